"""Behaviour cloning end to end: demonstrations campaign -> Minari -> ``testbed train`` -> served
over gRPC on 127.0.0.1 -> a 2-episode campaign; and the pieces it rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from testbed.episodes.minari_export import export_minari
from testbed.errors import UsageError
from testbed.training.bc import Demonstrations, clone, load_demonstrations
from testbed.training.config import BCConfig, TrainConfig
from testbed.training.envs import make_vec_env
from testbed.training.train import build_model
from tests.testbed.servers import REPO

DATASET = "testbed/conveyor-sort/kr-tiny-v0"
KEYS = ["bin_pos", "ee_pos", "ee_vel", "holding", "part_pos", "part_size", "part_type", "part_vel"]


def _testbed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(cwd / "datasets")}
    return subprocess.run(
        [sys.executable, "-m", "testbed", *args],
        cwd=cwd, capture_output=True, text=True, timeout=240, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 short demonstrations (2 seed blocks x 2) of the scripted controller (demos_kr)."""
    work = tmp_path_factory.mktemp("bc")
    done = _testbed(
        "run", "+campaign=demos_kr", "campaign.episodes=2", "task.max_steps=120",
        "task.snapshot_every=0", "campaign.report=false", "campaign.progress=false",
        f"campaign.dir={work / 'demos'}", cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    export_minari(work / "demos", DATASET, out=work / "datasets")
    return work


def test_demonstrations_load_as_transitions(dataset: Path) -> None:
    demos = load_demonstrations(DATASET, str(dataset / "datasets"), KEYS)
    assert demos.episodes == 4 and demos.actions.shape == (480, 4)
    assert sorted(demos.observations) == sorted(KEYS)
    assert (demos.env_id, demos.env_kwargs) == ("Testbed/ConveyorSort-v0", {"site": "kr-changwon"})
    assert all(v.shape[0] == 480 for v in demos.observations.values())
    with pytest.raises(UsageError, match=r"no field\(s\) \['camera'\]"):
        load_demonstrations(DATASET, str(dataset / "datasets"), ["camera"])


def test_cloning_fits_the_demonstrated_actions(dataset: Path) -> None:
    with _sort_model(dataset) as (demos, observations, model):
        before = _mse(model, observations, demos.actions)
        bc = BCConfig(gradient_steps=300, validation_episodes=1, eval_every=100)
        report = clone(
            model, demos, bc, seed=0, csv_path=dataset / "bc.csv",
            evaluate=lambda step: 0.5, progress=False,
        )  # fmt: skip
    assert report.train_loss < before / 2 and np.isfinite(report.validation_loss)
    assert (report.transitions, report.validation_transitions) == (360, 120)
    rows = (dataset / "bc.csv").read_text().splitlines()
    assert rows[0].startswith("gradient_step,") and len(rows) == 1 + 50 + 2  # every 6th, 100, 200
    evaluated = [row.split(",")[0] for row in rows[1:] if row.endswith(",0.5000,10")]
    assert evaluated == ["100", "200", "300"]
    assert rows[1].startswith("6,") and rows[1].endswith(",nan,0")
    std = model.policy.log_std.exp().detach().numpy()
    np.testing.assert_allclose(std, report.action_std, rtol=1e-3)


def test_standardized_cloning_folds_the_scaling_into_the_saved_actor(dataset: Path) -> None:
    """Trained on standardised inputs, the actor reads raw observations after cloning and
    while it is evaluated in between."""
    with _sort_model(dataset) as (demos, observations, model):
        before = _mse(model, observations, demos.actions)
        seen: list[float] = []
        bc = BCConfig(gradient_steps=300, validation_episodes=1, eval_every=150, standardize=True)

        def evaluate(step: int) -> float:
            seen.append(_mse(model, observations, demos.actions))  # raw inputs, folded actor
            return 0.5

        report = clone(
            model, demos, bc, seed=0, csv_path=dataset / "bc_std.csv",
            evaluate=evaluate, progress=False,
        )  # fmt: skip
    after = _mse(model, observations, demos.actions)
    assert len(seen) == 2 and seen[0] < before / 2 and after < before / 2
    assert after == pytest.approx(seen[-1], rel=1e-4)  # the last evaluation is the saved actor
    train_mse = report.train_loss  # standardised inputs; the same function of raw ones
    assert after < 3 * train_mse + 1e-3


def test_keep_best_restores_the_policy_of_the_best_evaluation(dataset: Path) -> None:
    """The policy evaluated best (here at step 100 of 300) is the one kept, not the last."""
    with _sort_model(dataset) as (demos, observations, model):
        losses: dict[int, float] = {}
        rates = {100: 0.8, 200: 0.4, 300: 0.6}

        def evaluate(step: int) -> float:
            losses[step] = _mse(model, observations, demos.actions)
            return rates[step]

        bc = BCConfig(gradient_steps=300, validation_episodes=1, eval_every=100, keep_best=True)
        report = clone(
            model, demos, bc, seed=0, csv_path=dataset / "bc_best.csv",
            evaluate=evaluate, progress=False,
        )  # fmt: skip
    assert report.kept_step == 100 and report.gradient_steps == 300
    assert losses[100] != losses[300]
    assert _mse(model, observations, demos.actions) == pytest.approx(losses[100], rel=1e-5)
    with pytest.raises(ValueError, match="bc.keep_best: expected bc.eval_every >= 1"):
        TrainConfig(bc=BCConfig(dataset=DATASET, eval_every=0, keep_best=True)).check()


def test_folding_gives_the_same_function_of_raw_inputs() -> None:
    from testbed.training.standardization import Standardization

    features = torch.tensor([[0.5, 2.0, 7.0], [0.6, 2.0, 9.0], [0.7, 2.0, 8.0]])
    scaling = Standardization.of(features)
    assert scaling.std[1] == 1.0  # a constant feature keeps its scale
    layer = torch.nn.Linear(3, 2)
    expected = layer(scaling.apply(features)).detach()

    class Actor:  # the two attributes `fold` reads
        mlp_extractor = type("M", (), {"policy_net": torch.nn.Sequential(layer)})()
        action_net = torch.nn.Linear(2, 1)

    scaling.fold(Actor())  # type: ignore[arg-type]
    torch.testing.assert_close(layer(features), expected, rtol=1e-5, atol=1e-5)


@contextmanager
def _sort_model(dataset: Path) -> Iterator[tuple[Demonstrations, dict[str, torch.Tensor], Any]]:
    """The tiny dataset's demonstrations, their observations as tensors, and a fresh PPO model
    (2x64 ReLU) on them, its env closed afterwards."""
    demos = load_demonstrations(DATASET, str(dataset / "datasets"), KEYS)
    observations = {k: torch.as_tensor(v) for k, v in demos.observations.items()}
    cfg = TrainConfig(env_id="Testbed/ConveyorSort-v0", obs_keys=KEYS)
    cfg.algo.net_arch, cfg.algo.activation = [64, 64], "relu"
    vec_env = make_vec_env(cfg.env_id, [cfg.site], {}, KEYS, 1, subproc=False)
    try:
        yield demos, observations, build_model(cfg, vec_env)
    finally:
        vec_env.close()


def _mse(model: object, observations: dict[str, torch.Tensor], actions: np.ndarray) -> float:
    policy = model.policy  # type: ignore[attr-defined]
    with torch.no_grad():
        mean = policy.action_net(
            policy.mlp_extractor.forward_actor(policy.pi_features_extractor(observations))
        )
    return float(((mean.numpy() - actions) ** 2).mean())


def test_cloned_policy_is_trained_served_and_evaluated_in_a_campaign(dataset: Path) -> None:
    out = dataset / "model"
    trained = _testbed(
        "train", "train=bc_sort_kr", f"train.bc.dataset={DATASET}",
        f"train.bc.datasets_root={dataset / 'datasets'}", "train.algo.net_arch=[64,64]",
        "train.bc.gradient_steps=200", "train.bc.eval_every=0", "train.bc.validation_episodes=1",
        "train.final_eval_episodes=1", "train.progress_bar=false", f"train.out_dir={out}",
        cwd=dataset,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "cloned 360 transitions, trained 0 env steps" in trained.stdout
    meta = json.loads((out / "model.json").read_text())
    assert (meta["method"], meta["algorithm"]) == ("bc", "PPO")
    assert meta["policy_id"] == "bc-ppo-conveyorsort-v0@kr-changwon"
    assert meta["bc"]["dataset"] == DATASET and meta["bc"]["gradient_steps"] == 200
    assert sorted(meta["observation"]) == sorted(KEYS)
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert "behaviour cloning done" in (out / "train.log").read_text()

    campaign = dataset / "eval"
    ran = _testbed(
        "run", "policy=scripted_kr", "policy.name=bc_tiny", f"policy.serve=sb3:{out / 'model.zip'}",
        "site=kr-changwon", "campaign.episodes=2", "task.max_steps=60", "task.snapshot_every=0",
        "campaign.report=false", "campaign.progress=false", f"campaign.dir={campaign}",
        cwd=dataset,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = pd.read_parquet(next(campaign.glob("*/episodes.parquet")))
    assert len(rows) == 2 and (rows["faults"] == 0).all() and (rows["steps"] == 60).all()
    assert set(rows["policy_id"]) == {f"{meta['policy_id']}@{meta['version']}"}


def test_shipped_configs_point_at_each_other() -> None:
    recipe = (REPO / "configs" / "train" / "bc_sort_kr.yaml").read_text()
    demos = (REPO / "configs" / "campaign" / "demos_kr.yaml").read_text()
    assert "dataset: testbed/conveyor-sort/kr-scripted-v0" in recipe
    assert "policy: scripted_kr_inprocess" in demos and "site: kr-changwon" in demos


def test_shipped_model_loads_with_its_metadata_and_recipe() -> None:
    from policies.sb3_policy import SB3Policy

    folder = REPO / "models" / "bc_sort_kr"
    policy = SB3Policy.load(folder / "model.zip")  # checks the zip against model.json's sha256
    meta = json.loads((folder / "model.json").read_text())
    assert (policy.home_site, meta["method"], meta["env_id"]) == (
        "kr-changwon", "bc", "Testbed/ConveyorSort-v0",
    )  # fmt: skip
    assert meta["final_eval"]["episodes"] >= 50 and meta["final_eval"]["success_rate"] >= 0.8
    assert meta["train_config"]["bc"]["dataset"] == "testbed/conveyor-sort/kr-scripted-v0"
    for name in ("config.yaml", "train.log", "bc.csv", "learning_curve.png"):
        assert (folder / name).is_file(), name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000


@pytest.mark.parametrize("channels_first", [True, False])
def test_random_shift_moves_each_image_whole_within_the_pad(channels_first: bool) -> None:
    """`bc.image_shift_px`: every image is the original translated by at most the pad (edges
    repeated), each by its own draw, in the layout it came in."""
    from testbed.training.pixels import shifted as _shifted

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 12, 10), generator=generator, dtype=torch.uint8)
    batch = images if channels_first else images.permute(0, 2, 3, 1)
    out = _shifted({"image": batch, "x": torch.zeros(32)}, {"image": channels_first}, 2, generator)
    assert out["x"] is not None and out["image"].shape == batch.shape
    shifted = out["image"] if channels_first else out["image"].permute(0, 3, 1, 2)
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="replicate")
    offsets = set()
    for i in range(32):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(shifted[i], padded[i, :, dy : dy + 12, dx : dx + 10])
        ]
        assert found, i
        offsets.add(found[0])
    assert len(offsets) > 5  # drawn per image


def test_auxiliary_targets_are_standardised_and_learnable() -> None:
    """`bc.aux_keys`: the head predicts the training transitions' fields, standardised on them."""
    from testbed.training.pixels import Auxiliary

    rng = np.random.default_rng(0)
    features = torch.as_tensor(rng.normal(size=(200, 8)), dtype=torch.float32)
    part = (features[:, :3] * 0.1 + torch.tensor([0.2, 0.4, 0.1])).numpy()  # metres
    held_out = np.arange(200) >= 180
    aux = Auxiliary.build({"part_pos": part}, ["part_pos"], 8, held_out, 0.5, seed=0)
    assert aux.train.shape == (180, 3) and aux.valid.shape == (20, 3)
    np.testing.assert_allclose(aux.train.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(aux.train.std(0).numpy(), 1.0, atol=1e-4)
    optimizer = torch.optim.Adam(aux.head.parameters(), lr=0.05)
    first = aux.loss(features[:180], aux.train).item()
    for _ in range(200):
        optimizer.zero_grad()
        aux.loss(features[:180], aux.train).backward()
        optimizer.step()
    assert aux.loss(features[180:], aux.valid).item() < first / 20  # a linear function: found


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"aux_keys": ["part_pos"]}, "bc.aux_keys: expected a policy with a trainable"),
        ({"image_shift_px": 2}, "bc.image_shift_px: expected a policy with a CNN"),
    ],
)
def test_image_aids_on_a_policy_without_images_are_refused(
    dataset: Path, changes: dict[str, object], expected: str
) -> None:
    demos = load_demonstrations(DATASET, str(dataset / "datasets"), KEYS)
    cfg = TrainConfig(env_id="Testbed/ConveyorSort-v0", obs_keys=KEYS)
    vec_env = make_vec_env(cfg.env_id, [cfg.site], {}, KEYS, 1, subproc=False)
    try:
        model = build_model(cfg, vec_env)
        bc = BCConfig(gradient_steps=1, validation_episodes=1, **changes)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match=expected):
            clone(model, demos, bc, seed=0, csv_path=dataset / "x.csv", progress=False)
    finally:
        vec_env.close()
