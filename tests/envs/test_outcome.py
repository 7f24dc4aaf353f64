"""Every episode summary says why the episode ended as it did: ``outcome``, from the task.

ConveyorSort: ``success``, else the first of lost part, wrong bin, time limit (step cap for an
episode its caller stopped), naming the part (parts.csv), the bin (stations.csv) and the step
(the index of the action, as records count steps). TouchPart: ``success`` or not touched.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from envs.conveyor_sort import ConveyorSortEnv
from envs.factory.task_sections import ConveyorSortSection
from envs.touch_part import TouchPartEnv
from tests.envs.controllers import CONTROLLERS, play

SITE = "kr-changwon"


def _first(events: list[tuple[int, str]], kind: str) -> tuple[int, str]:
    """(step, part id) of the first event of ``kind``."""
    step, event = next((s, e) for s, e in events if e.startswith(f"{kind}:"))
    return step, event.split(":", 1)[1]


def _assert_json(summary: dict) -> None:
    assert isinstance(summary["outcome"], str)
    assert json.loads(json.dumps(summary))["outcome"] == summary["outcome"]


def test_sorting_every_part_is_a_success() -> None:
    env = ConveyorSortEnv(SITE)
    played = play(env, "home", seed=0)
    summary = played.info["episode_metrics"]
    assert played.terminated and summary["success_at_end"] is True
    assert summary["outcome"] == "success" == env.episode_summary()["outcome"]
    _assert_json(summary)
    env.close()


def test_a_lost_part_names_the_first_one_lost_and_its_step() -> None:
    env = ConveyorSortEnv(SITE)
    played = play(env, "idle", seed=0)  # every part rides off the belt's end
    step, part_id = _first(played.events, "lost")
    summary = played.info["episode_metrics"]
    assert played.terminated and summary["parts_lost"] == 3
    assert summary["outcome"] == f"lost: {part_id} at step {step} (3 parts lost)"
    _assert_json(summary)
    env.close()


def test_a_wrong_bin_names_the_part_the_bin_and_the_step_and_a_loss_comes_first() -> None:
    env = ConveyorSortEnv(SITE)
    observation, _ = env.reset(seed=0)
    misroute, idle = CONTROLLERS["misroute"](env, 0), CONTROLLERS["idle"](env, 0)
    events: list[tuple[int, str]] = []
    info: dict = {}
    for step in range(env.max_steps):
        wrong = [(s, e) for s, e in events if e.startswith("wrong_bin:")]
        controller = idle if wrong else misroute  # one part in a wrong bin, the rest lost
        observation, _, terminated, truncated, info = env.step(controller(observation))
        events.extend((step, e) for e in info["events"])
        if wrong and step == wrong[0][0] + 5:  # stop here: the wrong bin is the reason
            step_wrong, part_id = _first(events, "wrong_bin")
            where = env.task.parts[0].in_bin
            assert where is not None and where != env.task.parts[0].bin_index
            bin_id = env.cell.bins[where].station_id
            assert bin_id in {s.station_id for s in env.site.bins}
            mid = env.episode_summary()
            assert mid["outcome"] == f"wrong bin: {part_id} in {bin_id} at step {step_wrong}"
            _assert_json(mid)
        if terminated or truncated:
            break
    step_lost, lost_id = _first(events, "lost")
    summary = info["episode_metrics"]
    assert summary["parts_wrong_bin"] == 1 and summary["parts_lost"] == 2
    assert summary["outcome"] == f"lost: {lost_id} at step {step_lost} (2 parts lost)"
    env.close()


def test_time_limit_and_step_cap_say_how_many_parts_were_sorted() -> None:
    site = ConveyorSortEnv(SITE).site
    short = site.site.model_copy(
        update={"tasks": (ConveyorSortSection(parts_per_episode=3, time_limit_s=8.0),)}
    )
    env = ConveyorSortEnv(site.model_copy(update={"site": short}))
    capped = play(env, "home", seed=0, max_steps=100)
    assert not (capped.terminated or capped.truncated)
    assert env.episode_summary()["outcome"] == "step cap at step 100 with 0/3 parts sorted"
    played = play(env, "home", seed=0)  # first part sorted at step ~138, 240 steps allowed
    assert played.truncated and played.steps == env.max_steps == 240
    assert [e for _, e in played.events if e.startswith(("lost:", "wrong_bin:"))] == []
    assert played.info["episode_metrics"]["outcome"] == "time limit with 1/3 parts sorted"
    env.close()


def test_the_outcome_survives_a_snapshot() -> None:
    env = ConveyorSortEnv(SITE)
    played = play(env, "idle", seed=1, max_steps=300)
    step, part_id = _first(played.events, "lost")  # the first part falls off at ~271
    blob = env.save_snapshot()
    restored = ConveyorSortEnv(SITE)
    restored.reset(seed=1)
    restored.load_snapshot(blob)
    expected = f"lost: {part_id} at step {step}"
    assert env.episode_summary()["outcome"] == restored.episode_summary()["outcome"] == expected
    env.close()
    restored.close()


def _reach(observation: dict[str, np.ndarray]) -> np.ndarray:
    target = observation["part_pos"] + np.array([0.0, 0.0, observation["part_size"][2] / 2.0])
    delta = target - observation["ee_pos"]
    if np.hypot(delta[0], delta[1]) > 0.015:
        delta[2] = max(delta[2], delta[2] + 0.05)
    return np.array([*np.clip(10.0 * delta, -1.0, 1.0), -1.0], dtype=np.float32)


@pytest.mark.parametrize("site", ["kr-changwon", "us-austin"])
def test_touch_part_says_success_or_that_the_part_was_not_touched(site: str) -> None:
    env = TouchPartEnv(site, time_limit_s=1.0)
    observation, reset_info = env.reset(seed=0)
    env.step(np.zeros(4, np.float32))
    capped = env.episode_summary()["outcome"]
    assert re.fullmatch(
        rf"step cap at step 1: {reset_info['part_id']} not touched \(closest \d+ mm\)", capped
    )
    truncated, info = False, {}
    while not truncated:
        *_, truncated, info = env.step(np.zeros(4, np.float32))
    summary = info["episode_metrics"]
    assert re.fullmatch(
        rf"time limit: {env.part_id} not touched \(closest \d+ mm\)", summary["outcome"]
    )
    _assert_json(summary)
    env.close()
    env = TouchPartEnv(site)
    observation, _ = env.reset(seed=0)
    while True:
        observation, _, terminated, truncated, info = env.step(_reach(observation))
        if terminated or truncated:
            break
    assert terminated and info["episode_metrics"]["outcome"] == "success"
    env.close()
