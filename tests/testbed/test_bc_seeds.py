"""The shipped training seeds of bc_sort_kr: loadable, served and checked over gRPC, one policy
name with three ``policy.seed`` values whose trials do not collide in one campaign."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from testbed.cli import _register, app
from tests.testbed.campaign.helpers import compose
from tests.testbed.servers import REPO, start_cli_server, stop

_register()

SEEDS = {0: "bc_sort_kr", 1: "bc_sort_kr_s1", 2: "bc_sort_kr_s2"}


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_each_training_seed_is_shipped_with_its_recipe(seed: int) -> None:
    from policies.sb3_policy import SB3Policy

    folder = REPO / "models" / SEEDS[seed]
    policy = SB3Policy.load(folder / "model.zip")  # the zip must match model.json's sha256
    meta = json.loads((folder / "model.json").read_text())
    assert (policy.home_site, meta["method"], meta["seed"]) == ("kr-changwon", "bc", seed)
    assert meta["train_config"]["bc"] == json.loads(
        (REPO / "models" / "bc_sort_kr" / "model.json").read_text()
    )["train_config"]["bc"] | {"eval_every": meta["train_config"]["bc"]["eval_every"]}
    assert meta["final_eval"]["episodes"] >= 50 and meta["final_eval"]["success_rate"] >= 0.8
    for name in ("config.yaml", "train.log", "bc.csv", "learning_curve.png"):
        assert (folder / name).is_file(), name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000


def test_policy_configs_name_one_policy_with_three_training_seeds() -> None:
    names = set()
    for seed, config_name in SEEDS.items():
        config = compose([f"policy={config_name}"])
        assert (config.policy.name, config.policy.seed) == ("bc_sort_kr", seed)
        assert str(config.policy.serve).endswith(f"/{SEEDS[seed]}/model.zip")
        names.add(config.trial_name)
    assert names == {f"bc_sort_kr__t{s}__kr-changwon__s0" for s in SEEDS}
    assert compose(["policy=scripted_kr"]).trial_name == "scripted_kr__kr-changwon__s0"


def test_a_shipped_seed_passes_check_policy() -> None:
    process, address = start_cli_server("sb3:models/bc_sort_kr_s1/model.zip")
    try:
        result = CliRunner().invoke(app, ["check-policy", address, "--steps", "5"])
        assert result.exit_code == 0, result.output
        assert "handshake" in result.output and not re.search(r"│ FAIL\s+│", result.output)
    finally:
        stop(process)
