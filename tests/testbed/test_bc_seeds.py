"""The shipped training seeds of each behaviour-cloning recipe (sort, palletize, peg-in-hole, the
pixels-in touch policy):
loadable, served and checked over gRPC, one policy name with three ``policy.seed`` values whose
trials do not collide in one campaign."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from testbed.cli import _register, app
from tests.testbed.campaign.helpers import compose
from tests.testbed.servers import REPO, start_cli_server, stop

_register()

RECIPES = {
    # recipe: (env id, task config, trial prefix)
    "bc_sort_kr": ("Testbed/ConveyorSort-v0", "conveyor_sort", ""),
    "bc_palletize_kr": ("Testbed/Palletize-v0", "palletize", "palletize__"),
    "bc_peg_kr": ("Testbed/PegInHole-v0", "peg_in_hole", "peg_in_hole__"),
    "bc_touch_pixels_kr": ("Testbed/TouchPart-v0", "touch_part", "touch_part__"),
}
HOME_BAR = {"bc_touch_pixels_kr": 0.7}  # success at home over 50 episodes; else 0.8
SEEDS = {0: "", 1: "_s1", 2: "_s2"}  # training seed: the model folder's suffix


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_each_training_seed_is_shipped_with_its_recipe(recipe: str, seed: int) -> None:
    from policies.sb3_policy import SB3Policy

    folder = REPO / "models" / f"{recipe}{SEEDS[seed]}"
    policy = SB3Policy.load(folder / "model.zip")  # the zip must match model.json's sha256
    meta = json.loads((folder / "model.json").read_text())
    assert (policy.home_site, meta["method"], meta["seed"]) == ("kr-changwon", "bc", seed)
    assert meta["env_id"] == RECIPES[recipe][0]
    assert meta["train_config"]["bc"] == json.loads(
        (REPO / "models" / recipe / "model.json").read_text()
    )["train_config"]["bc"] | {"eval_every": meta["train_config"]["bc"]["eval_every"]}
    assert meta["final_eval"]["episodes"] >= 50
    assert meta["final_eval"]["success_rate"] >= HOME_BAR.get(recipe, 0.8)
    for name in ("config.yaml", "train.log", "bc.csv", "learning_curve.png"):
        assert (folder / name).is_file(), name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_policy_configs_name_one_policy_with_three_training_seeds(recipe: str) -> None:
    _, task, prefix = RECIPES[recipe]
    names = set()
    for seed, suffix in SEEDS.items():
        config = compose([f"policy={recipe}{suffix}", f"task={task}"])
        assert (config.policy.name, config.policy.seed) == (recipe, seed)
        assert str(config.policy.serve).endswith(f"/{recipe}{suffix}/model.zip")
        names.add(config.trial_name)
    assert names == {f"{prefix}{recipe}__t{s}__kr-changwon__s0" for s in SEEDS}
    assert compose(["policy=scripted_kr"]).trial_name == "scripted_kr__kr-changwon__s0"


@pytest.mark.parametrize(
    ("model", "env_id"),
    [
        ("bc_sort_kr_s1", RECIPES["bc_sort_kr"][0]),
        ("bc_palletize_kr", RECIPES["bc_palletize_kr"][0]),
        ("bc_peg_kr_s2", RECIPES["bc_peg_kr"][0]),
    ],
)
def test_a_shipped_model_passes_check_policy(model: str, env_id: str) -> None:
    process, address = start_cli_server(f"sb3:models/{model}/model.zip")
    try:
        result = CliRunner().invoke(app, ["check-policy", address, "--steps", "5", "--env", env_id])
        assert result.exit_code == 0, result.output
        assert "handshake" in result.output and not re.search(r"│ FAIL\s+│", result.output)
    finally:
        stop(process)
