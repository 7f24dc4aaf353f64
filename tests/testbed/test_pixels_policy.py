"""A pixels-in policy end to end (issue 18): image demonstrations recorded (compressed) ->
Minari (images included) -> behaviour cloning of a CNN policy -> served over gRPC on 127.0.0.1
-> a 2-episode campaign whose observations carry the image; and the pieces it rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testbed.episodes.minari_export import export_minari
from testbed.episodes.records import read_record
from testbed.episodes.replay import replay_episode
from testbed.errors import ReplayDivergenceError
from testbed.training.bc import clone, load_demonstrations
from testbed.training.config import BCConfig, TrainConfig
from testbed.training.envs import make_vec_env
from testbed.training.train import build_model

pytestmark = pytest.mark.slow  # ~1-2 minutes on 2 cores: every step renders an image

DATASET = "testbed/touch-part/kr-pixels-tiny-v0"
SIZE = 40  # NatureCNN's smallest input is 36 x 36
CAMERA = [f"task.env_kwargs.camera_obs.width={SIZE}", f"task.env_kwargs.camera_obs.height={SIZE}"]
KEYS = ["ee_pos", "ee_vel", "image"]


def _testbed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(cwd / "datasets")}
    return subprocess.run(
        [sys.executable, "-m", "testbed", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 image demonstrations of the scripted controller on TouchPart (demos_touch_pixels_kr)."""
    work = tmp_path_factory.mktemp("pixels")
    done = _testbed(
        "run", "+campaign=demos_touch_pixels_kr", "campaign.episodes=3", *CAMERA,
        "task.snapshot_every=0", "campaign.report=false", "campaign.progress=false",
        f"campaign.dir={work / 'demos'}", cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    export_minari(work / "demos", DATASET, out=work / "datasets")
    return work


def test_records_and_the_dataset_carry_the_images_compressed(dataset: Path) -> None:
    paths = sorted(dataset.glob("demos/*/episodes/ep-*.npz"))
    record = read_record(paths[0])
    image = record.observations["image"]
    assert image.dtype == np.uint8 and image.shape == (record.meta.steps + 1, SIZE, SIZE, 3)
    assert record.meta.env_kwargs["camera_obs"] == {
        "station": "cam2",
        "width": SIZE,
        "height": SIZE,
    }
    assert paths[0].stat().st_size < image.nbytes / 2  # deflated in the .npz
    assert replay_episode(record).verified  # the images re-rendered bit for bit
    tampered = read_record(paths[0])
    tampered.observations["image"][3, 10, 10, 0] ^= 1
    with pytest.raises(ReplayDivergenceError, match="obs/image"):  # one pixel off diverges
        replay_episode(tampered)
    demos = load_demonstrations(DATASET, str(dataset / "datasets"), KEYS)
    assert demos.observations["image"].dtype == np.uint8
    assert demos.observations["image"].shape == (len(demos.actions), SIZE, SIZE, 3)
    assert demos.env_kwargs["camera_obs"] == {"station": "cam2", "width": SIZE, "height": SIZE}


def test_cloning_trains_the_cnn_end_to_end(dataset: Path) -> None:
    demos = load_demonstrations(DATASET, str(dataset / "datasets"), KEYS)
    cfg = TrainConfig(env_id="Testbed/TouchPart-v0", obs_keys=KEYS, env_kwargs=demos.env_kwargs)
    cfg.algo.net_arch = [32]
    cfg.algo.hyperparameters = {
        "policy_kwargs": {"features_extractor_kwargs": {"cnn_output_dim": 16}}
    }
    kwargs = {"camera_obs": demos.env_kwargs["camera_obs"]}
    vec_env = make_vec_env(cfg.env_id, [cfg.site], kwargs, KEYS, 1, subproc=False)
    try:
        model = build_model(cfg, vec_env)
        cnn = [p.detach().clone() for p in model.policy.pi_features_extractor.parameters()]
        bc = BCConfig(
            gradient_steps=40, batch_size=16, validation_episodes=1, eval_every=0, image_shift_px=2
        )
        report = clone(model, demos, bc, seed=0, csv_path=dataset / "bc.csv", progress=False)
    finally:
        vec_env.close()
    after = list(model.policy.pi_features_extractor.parameters())
    assert any(not np.allclose(a.detach(), b) for a, b in zip(after, cnn, strict=True))
    rows = [r.split(",") for r in (dataset / "bc.csv").read_text().splitlines()[1:]]
    assert float(rows[-1][1]) < float(rows[0][1])  # the training loss fell
    assert np.isfinite(report.validation_loss) and report.validation_transitions > 0


def test_pixels_policy_is_trained_served_and_evaluated_in_a_campaign(dataset: Path) -> None:
    out = dataset / "model"
    trained = _testbed(
        "train", "train=bc_touch_pixels_kr", f"train.bc.dataset={DATASET}",
        f"train.bc.datasets_root={dataset / 'datasets'}", "train.algo.net_arch=[32]",
        f"train.env_kwargs.camera_obs.width={SIZE}", f"train.env_kwargs.camera_obs.height={SIZE}",
        "train.bc.gradient_steps=20", "train.bc.batch_size=16", "train.bc.validation_episodes=1",
        "train.bc.eval_every=0", "train.bc.keep_best=false", "train.final_eval_episodes=1",
        "train.progress_bar=false", f"train.out_dir={out}",
        cwd=dataset,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    meta = json.loads((out / "model.json").read_text())
    assert meta["observation"]["image"]["shape"] == [SIZE, SIZE, 3]  # as the env publishes it
    assert meta["observation"]["image"]["dtype"] == "uint8" and meta["method"] == "bc"
    assert "KeypointExtractor" in (out / "config.yaml").read_text()  # the recipe's CNN

    campaign = dataset / "eval"
    ran = _testbed(
        "run", "task=touch_part", "policy=scripted_kr", "policy.name=pixels_tiny",
        f"policy.serve=sb3:{out / 'model.zip'}", "site=kr-changwon", "campaign.episodes=2",
        "policy.image_encoding=png",  # lossless: the served CNN decodes what the env rendered
        *(f"+{c}" for c in CAMERA), "+task.env_kwargs.camera_obs.station=cam2",
        "task.max_steps=25", "task.snapshot_every=0",
        "campaign.report=false", "campaign.progress=false", f"campaign.dir={campaign}",
        cwd=dataset,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = pd.read_parquet(next(campaign.glob("*/episodes.parquet")))
    assert len(rows) == 2 and (rows["faults"] == 0).all()
    assert set(rows["policy_id"]) == {f"{meta['policy_id']}@{meta['version']}"}
    record = read_record(next(campaign.glob("*/episodes/ep-00000.npz")))
    assert record.observations["image"].shape[1:] == (SIZE, SIZE, 3)  # what the policy was sent
