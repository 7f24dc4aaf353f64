"""Finger grippers in whole envs: bundle values, determinism, check_env (snapshots: next file).

Each env is built from a shipped site's bundle copied with ``robot.gripper.kind: fingers``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.conveyor_sort import ConveyorSortEnv
from envs.errors import FactoryDataError
from envs.factory.loader import load_bundle
from policies.scripted import SITE_GAINS, decide

SITE_DATA = Path(__file__).resolve().parents[2] / "envs" / "site_data"


def finger_bundle(site: str, root: Path, palletize: bool = False, **settings: object) -> Path:
    """A copy of a shipped site's bundle with ``gripper.kind: fingers`` (plus settings).

    The shipped pallet patterns are for suction (`tests/envs/test_finger_room.py`), so the
    copy lists no palletizing task unless ``palletize``.
    """
    bundle = Path(shutil.copytree(SITE_DATA / site, root / site))
    site_yaml = bundle / "site.yaml"
    lines = "".join(f"    {key}: {value}\n" for key, value in settings.items())
    text = site_yaml.read_text(encoding="utf-8")
    assert "    kind: suction\n" in text
    text = text.replace("    kind: suction\n", "    kind: fingers\n" + lines)
    site_yaml.write_text(text if palletize else without_palletize(text))
    return bundle


def without_palletize(site_yaml: str) -> str:
    """``site_yaml`` without its ``tasks:`` item of kind palletize."""
    lines = site_yaml.splitlines(keepends=True)
    start = lines.index("- kind: palletize\n")
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return "".join(lines[:start] + lines[end:])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("grip_force_n", 5, "greater than or equal to 20"),
        ("finger_friction", 0.5, "greater than or equal to 1"),
        ("opening_m", 0.5, "less than or equal to 0.2"),
        ("opening_m", 0.1, "at most 0.078 m, the widest the panda fingers open"),
        ("opening_m", 0.05, "a part the fingers can grip: its narrow side 0.07 m"),
    ],
)
def test_bad_finger_values_name_the_file_and_key(
    tmp_path: Path, key: str, value: float, expected: str
) -> None:
    bundle = finger_bundle("kr-changwon", tmp_path, **{key: value})
    with pytest.raises(FactoryDataError) as caught:
        load_bundle(bundle)
    text = str(caught.value)
    assert expected in text, text
    where = "parts.csv" if "narrow side" in expected else f"site.yaml: robot.gripper.{key}"
    assert where in text, text


def scripted_episode(
    env: ConveyorSortEnv, site: str, seed: int, steps: int, snapshot_after_hold: int | None
) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]], bytes | None, int]:
    """Scripted finger picking; returns actions, observations and a snapshot taken mid-grasp."""
    gains = replace(SITE_GAINS[site], fingers=True)
    observation, _ = env.reset(seed=seed)
    actions, observations, blob, taken_at, held_for = [], [observation], None, -1, 0
    for t in range(steps):
        held_for = held_for + 1 if env.gripper.held is not None else 0
        if snapshot_after_hold is not None and blob is None and held_for == snapshot_after_hold:
            blob, taken_at = env.save_snapshot(), t
        action = decide(gains, observation)
        observation, *_ = env.step(action)
        actions.append(action)
        observations.append(observation)
    return actions, observations, blob, taken_at


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], where: str) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), (where, name, a[name], b[name])


def test_same_seed_and_actions_give_identical_observations(tmp_path: Path) -> None:
    site = "kr-changwon"
    first = ConveyorSortEnv(site=str(finger_bundle(site, tmp_path)))
    actions, observations, _, _ = scripted_episode(first, site, 7, 170, None)
    assert any(o["holding"][0] > 0.5 for o in observations)
    first.close()
    second = ConveyorSortEnv(site=str(finger_bundle(site, tmp_path / "again")))
    same(second.reset(seed=7)[0], observations[0], "reset")
    for t, action in enumerate(actions):
        same(second.step(action)[0], observations[t + 1], f"step {t}")
    second.close()


def test_gymnasium_check_env_passes_with_fingers(tmp_path: Path) -> None:
    env = ConveyorSortEnv(site=str(finger_bundle("us-austin", tmp_path)))
    check_env(env, skip_render_check=True)
    env.close()
