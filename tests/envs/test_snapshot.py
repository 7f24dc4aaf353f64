"""Env snapshots: restoring one reproduces the rest of the episode bit for bit, in any process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.conveyor_sort import ConveyorSortEnv
from envs.sites import list_sites
from policies.scripted import scripted_policy
from protos.specs import SessionInfo

SEED = 5
FIRST_GRASP_BY = {"jp-nagoya": 345, "kr-changwon": 115, "us-austin": 205}  # steps, at SEED


def _run(site: str, steps: int, snapshot_at: set[int]) -> dict:
    """Scripted episode; returns actions, observations, rewards, snapshots and held steps."""
    env = ConveyorSortEnv(site)
    policy = scripted_policy(site)
    session = SessionInfo("snapshot-test", site=site, seed=SEED)
    observation, _ = env.reset(seed=SEED)
    policy.reset(session)
    trace: dict = {
        "actions": [],
        "obs": [observation],
        "rewards": [],
        "snapshots": {},
        "held": set(),
    }
    for t in range(steps):
        # Snapshot on the schedule, and once right after the first grasp (the weld must survive).
        first_hold = env.gripper.held is not None and not trace["held"]
        if t in snapshot_at or first_hold:
            trace["snapshots"][t] = env.save_snapshot()
            if env.gripper.held is not None:
                trace["held"].add(t)
        action = np.asarray(policy.act(session, observation), np.float32).reshape(-1, 4)[0]
        observation, reward, terminated, truncated, _ = env.step(action)
        trace["actions"].append(action)
        trace["obs"].append(observation)
        trace["rewards"].append(reward)
        if terminated or truncated:
            break
    env.close()
    return trace


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], where: str) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, (where, name)
        assert a[name].tobytes() == b[name].tobytes(), (where, name, a[name], b[name])


@pytest.mark.parametrize("site", list_sites())
def test_restored_snapshot_continues_bit_identically(site: str) -> None:
    steps = FIRST_GRASP_BY[site] + 20
    trace = _run(site, steps=steps, snapshot_at={0, steps // 3, 2 * steps // 3})
    assert trace["held"], "expected a snapshot taken while a part is held"
    env = ConveyorSortEnv(site)
    for start, blob in trace["snapshots"].items():
        env.reset(seed=SEED)  # same world, same body ids; the snapshot does the rest
        observation = env.load_snapshot(blob)
        _assert_same(observation, trace["obs"][start], f"restored at {start}")
        for t in range(start, min(start + 50, len(trace["actions"]))):
            observation, reward, *_ = env.step(trace["actions"][t])
            _assert_same(observation, trace["obs"][t + 1], f"step {t} after restore at {start}")
            assert reward == trace["rewards"][t], (start, t)
    env.close()


def test_taking_snapshots_does_not_change_the_trajectory() -> None:
    with_snapshots = _run("us-austin", steps=150, snapshot_at=set(range(0, 150, 7)))
    without = _run("us-austin", steps=150, snapshot_at=set())
    for t, (a, b) in enumerate(zip(with_snapshots["obs"], without["obs"], strict=True)):
        _assert_same(a, b, f"observation {t}")


def test_snapshot_restores_python_state() -> None:
    trace = _run("us-austin", steps=130, snapshot_at={120})
    original = ConveyorSortEnv("us-austin")
    original.reset(seed=SEED)
    original.load_snapshot(trace["snapshots"][120])
    restored = ConveyorSortEnv("us-austin")
    restored.reset(seed=SEED)
    restored.load_snapshot(original.save_snapshot())  # a snapshot of a restored env round-trips
    assert restored.steps == 120
    assert restored.np_random.bit_generator.state == original.np_random.bit_generator.state
    assert len(restored.link.state()["link_queue"]) == 2  # us-austin: 2-step policy-link latency
    assert [p.status for p in restored.task.parts] == [p.status for p in original.task.parts]
    assert restored.metrics == original.metrics
    original.close()
    restored.close()


def test_snapshot_of_another_episode_or_site_is_refused() -> None:
    trace = _run("kr-changwon", steps=1, snapshot_at={0})
    blob = trace["snapshots"][0]
    other_site = ConveyorSortEnv("jp-nagoya")
    other_site.reset(seed=SEED)
    with pytest.raises(ValueError, match="site 'kr-changwon'"):
        other_site.load_snapshot(blob)
    other_site.close()
    other_seed = ConveyorSortEnv("kr-changwon")
    other_seed.reset(seed=SEED + 1)
    with pytest.raises(ValueError, match="part schedule differs"):
        other_seed.load_snapshot(blob)
    with pytest.raises(ValueError, match="not a readable env snapshot"):
        other_seed.load_snapshot(b"not a snapshot")
    other_seed.close()


_CHILD = """
import sys, numpy as np
from envs.conveyor_sort import ConveyorSortEnv
data = np.load(sys.argv[1], allow_pickle=False)
env = ConveyorSortEnv("us-austin")
env.reset(seed=int(data["seed"]))
env.load_snapshot(data["snapshot"].tobytes())
rows = [np.concatenate(list(env.step(a)[0].values())) for a in data["actions"]]
np.save(sys.argv[2], np.stack(rows))
"""


def test_snapshot_restores_in_another_process(tmp_path: Path) -> None:
    trace = _run("us-austin", steps=140, snapshot_at={100})
    actions = np.stack(trace["actions"][100:140])
    np.savez(
        tmp_path / "in.npz",
        seed=SEED,
        snapshot=np.frombuffer(trace["snapshots"][100], np.uint8),
        actions=actions,
    )
    subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
    )
    expected = np.stack([np.concatenate(list(o.values())) for o in trace["obs"][101:141]])
    assert np.load(tmp_path / "out.npy").tobytes() == expected.tobytes()


def test_snapshot_of_the_compound_bin_format_is_refused_with_its_reason() -> None:
    trace = _run("kr-changwon", steps=1, snapshot_at={0})
    with np.load(io.BytesIO(trace["snapshots"][0]), allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    state = json.loads(arrays["state"].tobytes())
    state["format"] = "testbed.env-snapshot/1"
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    env = ConveyorSortEnv("kr-changwon")
    env.reset(seed=SEED)
    with pytest.raises(ValueError, match="bins were one compound body.*replay from step 0"):
        env.load_snapshot(buffer.getvalue())
    env.close()
