"""Finger grippers against the peg and the pallet pattern (`envs.factory.finger_room`).

The shipped sites palletize on turned pallets in tight patterns, fit for suction only: with
fingers each is refused with the slot's key. A pattern laid out for fingers (pallet square to
the belt, cartons' narrow side across the jaws, room for a jaw beside each) passes, and the
kr-changwon controller's finger branch stacks it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import pytest

from envs.factory.loader import check_bundle
from envs.palletize import PalletizeEnv
from policies import scripted_palletize
from tests.envs.test_fingers_env import finger_bundle

SPACED = """  layers:
  - - [-0.0525, -0.05, 0.0]
    - [0.0525, -0.05, 0.0]
    - [-0.0525, 0.05, 0.0]
    - [0.0525, 0.05, 0.0]
"""
"""kr-changwon's 0.1 x 0.05 m cartons with 5 cm between rows: a Panda jaw fits beside each."""
TIGHT = SPACED.replace("0.05,", "0.0275,")
"""The shipped bottom layer's spacing (5 mm between rows), square to the belt."""


def pallet_bundle(root: Path, layers: str, site: str = "kr-changwon", rz: str = "0.0") -> Path:
    """``site`` with fingers, its pallet turned to ``rz`` and its pattern's layers replaced."""
    bundle = finger_bundle(site, root, palletize=True)
    stations = bundle / "stations.csv"
    with stations.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    next(row for row in rows if row["kind"] == "pallet")["rz"] = rz
    with stations.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    site_yaml = bundle / "site.yaml"
    text = site_yaml.read_text(encoding="utf-8")
    start = text.index("  layers:\n", text.index("kind: palletize"))
    end = text.index("  time_limit_s", start)
    site_yaml.write_text(text[:start] + layers + text[end:], encoding="utf-8")
    return bundle


@pytest.mark.parametrize("site", ["kr-changwon", "jp-nagoya", "us-austin"])
def test_shipped_pallet_patterns_are_refused_with_fingers(tmp_path: Path, site: str) -> None:
    errors = check_bundle(finger_bundle(site, tmp_path, palletize=True)).errors
    keys = {issue.location for issue in errors}
    assert keys and all(key.startswith("tasks[palletize].layers[") for key in keys), errors
    first = str(errors[0])
    assert "site.yaml: tasks[palletize].layers[0][0]" in first
    assert "across the jaws" in first and "the pallet's rz plus the slot's yaw" in first
    assert "suction gripper" in first


def test_a_carton_too_wide_across_the_jaws_is_refused(tmp_path: Path) -> None:
    turned = SPACED.replace("0.0]", "1.570796]")  # the 0.1 m side across the jaws
    errors = check_bundle(pallet_bundle(tmp_path, turned)).errors
    assert len(errors) == 4
    assert "a carton 0.100 m across the jaws" in str(errors[0])
    assert "at most the finger opening 0.078 m" in str(errors[0])


def test_no_room_for_a_jaw_beside_a_placed_carton_is_refused(tmp_path: Path) -> None:
    errors = check_bundle(pallet_bundle(tmp_path, TIGHT)).errors
    assert [issue.location for issue in errors] == [
        "tasks[palletize].layers[0][2]",
        "tasks[palletize].layers[0][3]",
    ]
    text = str(errors[0])
    assert "would hit the carton already in layers[0][0]" in text
    # Jaw 0.07 m + half carton 0.025 m against rows 0.055 m apart: 40 mm into it.
    assert re.search(r"\(40 mm into it\)", text), text


def test_a_pattern_laid_out_for_fingers_passes(tmp_path: Path) -> None:
    check = check_bundle(pallet_bundle(tmp_path, SPACED + SPACED.replace("  layers:\n", "")))
    assert check.errors == ()


def test_a_peg_wider_than_the_opening_is_refused(tmp_path: Path) -> None:
    bundle = finger_bundle("kr-changwon", tmp_path)
    site_yaml = bundle / "site.yaml"
    text = site_yaml.read_text(encoding="utf-8")
    site_yaml.write_text(
        text.replace("peg_size_m: [0.03, 0.03, 0.07]", "peg_size_m: [0.03, 0.08, 0.07]")
    )
    errors = [e for e in check_bundle(bundle).errors if "peg" in e.location]
    assert [str(e) for e in errors] == [
        "site.yaml: tasks[peg-in-hole].peg_size_m: expected a peg the fingers can grip: its "
        "wider side 0.08 m below the finger opening 0.078 m (site.yaml "
        "robot.gripper.opening_m), or a suction gripper (got [0.03, 0.08, 0.07])"
    ]


def finger_palletize(env: PalletizeEnv, seed: int) -> str:
    """One episode of the kr-changwon controller's finger branch; its outcome."""
    gains = replace(scripted_palletize.SITE_GAINS["kr-changwon"], fingers=True)
    observation, _ = env.reset(seed=seed)
    for _ in range(env.max_steps):
        action = scripted_palletize.decide(gains, observation)
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    return str(env.episode_summary()["outcome"])


def test_the_finger_branch_stacks_a_pattern_laid_out_for_fingers(tmp_path: Path) -> None:
    """Two cartons of the spaced pattern (about 250 steps): gripped, carried, placed."""
    two = "  layers:\n  - - [0.0, -0.05, 0.0]\n    - [0.0, 0.05, 0.0]\n"
    env = PalletizeEnv(site=str(pallet_bundle(tmp_path, two)))
    assert finger_palletize(env, seed=0) == "success"
    env.close()


@pytest.mark.nightly  # 10 episodes of 8 cartons, about 2 min
def test_the_finger_branch_stacks_two_layers_in_nine_of_ten(tmp_path: Path) -> None:
    """Measured 2026-12-04: 10/10 (docs/factory_bundle.md, "Grippers")."""
    layers = SPACED + SPACED.replace("  layers:\n", "")
    env = PalletizeEnv(site=str(pallet_bundle(tmp_path, layers)))
    outcomes = [finger_palletize(env, seed) for seed in range(10)]
    env.close()
    assert outcomes.count("success") >= 9, outcomes
