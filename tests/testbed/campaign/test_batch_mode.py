"""``policy.mode=batch``: episodes in lockstep, one ActBatch per step, records as in unary mode.

The scripted controller is deterministic, so every episode of a batched trial must record the
same actions, observations, rewards, faults and outcome as the unary trial of the same seeds
(the faults of a batched trial against a misbehaving server are in ``test_faults.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from policies.scripted import ScriptedSortController
from policies.server import PolicyServer, serve
from protos.specs import SessionInfo
from testbed.campaign.trial import run_trial
from testbed.episodes.records import RECORD_GLOB, EpisodeRecord, read_record

from .helpers import FAST, compose, managed_servers

EPISODES, STEPS = 5, 80


class CountingBatchController(ScriptedSortController):
    """The kr-changwon controller with an ``act_batch`` that counts its calls (in-process)."""

    batch_sizes: list[int] = []

    def __init__(self, site_id: str = "kr-changwon") -> None:
        super().__init__(site_id)

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        CountingBatchController.batch_sizes.append(len(sessions))
        return [self.act(s, o) for s, o in zip(sessions, observations, strict=True)]


@pytest.fixture(scope="module")
def server() -> Iterator[PolicyServer]:
    server = serve(ScriptedSortController("kr-changwon"), "127.0.0.1:0")
    assert server.wait_until_serving(10)
    yield server
    server.stop(grace=0)


def _remote(address: str, tmp_path: Path, *extra: str) -> list[str]:
    return [*FAST, "policy=remote", "policy.name=scripted", "policy.home_site=kr-changwon",
            f"policy.address={address}", f"campaign.episodes={EPISODES}",
            f"task.max_steps={STEPS}", f"campaign.dir={tmp_path}", *extra]  # fmt: skip


def _records(trial_dir: Path) -> list[EpisodeRecord]:
    return sorted(
        (read_record(p) for p in trial_dir.glob(RECORD_GLOB)), key=lambda r: r.meta.episode
    )


def _assert_same_episodes(batched: list[EpisodeRecord], unary: list[EpisodeRecord]) -> None:
    assert [r.meta.episode for r in batched] == [r.meta.episode for r in unary]
    for b, u in zip(batched, unary, strict=True):
        assert b.meta.seed == u.meta.seed
        np.testing.assert_array_equal(b.actions, u.actions)
        assert b.observations.keys() == u.observations.keys()
        for name in u.observations:
            np.testing.assert_array_equal(b.observations[name], u.observations[name])
        np.testing.assert_array_equal(b.rewards, u.rewards)
        assert (b.meta.ended_by, b.meta.metrics, b.meta.events) == (
            u.meta.ended_by, u.meta.metrics, u.meta.events
        )  # fmt: skip
        # the same faults at the same steps (the messages name the RPC: Act or ActBatch)
        assert [(f.step, f.kind) for f in b.meta.faults] == [
            (f.step, f.kind) for f in u.meta.faults
        ]


def _run(overrides: list[str], tmp_path: Path, name: str) -> Path:
    config = compose([*overrides, f"campaign.name={name}"])
    trial_dir = tmp_path / name / config.trial_name
    outcome = run_trial(config, trial_dir)
    assert outcome.status == "done", outcome.reason
    return trial_dir


def test_a_batched_trial_records_what_a_unary_trial_records(
    server: PolicyServer, tmp_path: Path
) -> None:
    unary = _run(_remote(server.address, tmp_path, "policy.mode=unary"), tmp_path, "unary")
    # 3 lanes for 5 episodes: lanes pick up episodes as others finish, the last batch shrinks
    batched = _run(
        _remote(server.address, tmp_path, "policy.mode=batch", "policy.batch_size=3"),
        tmp_path,
        "batch",
    )
    _assert_same_episodes(_records(batched), _records(unary))
    latencies = [r.latencies_ms for r in _records(batched)]
    assert all(len(lat) == STEPS for lat in latencies)  # one policy answer per step
    # Both ran packed (observation_form auto, the SDK server packs); named records the same.
    named = _run(
        _remote(server.address, tmp_path, "policy.mode=batch", "policy.batch_size=3",
                "policy.observation_form=named"),
        tmp_path,
        "named",
    )  # fmt: skip
    _assert_same_episodes(_records(named), _records(unary))


def test_an_in_process_policy_batches_through_its_act_batch(tmp_path: Path) -> None:
    target = f"{__name__}.CountingBatchController"
    common = [*FAST, "policy=scripted_kr_inprocess", f"campaign.episodes={EPISODES}",
              f"task.max_steps={STEPS}", f"campaign.dir={tmp_path}"]  # fmt: skip
    unary = _run(common, tmp_path, "unary")
    CountingBatchController.batch_sizes.clear()
    batched = _run(
        [
            *common,
            "policy.mode=batch",
            "policy.batch_size=4",
            f"policy.factory={{_target_: {target}}}",
        ],
        tmp_path,
        "batch",
    )
    _assert_same_episodes(_records(batched), _records(unary))
    sizes = CountingBatchController.batch_sizes
    assert max(sizes) == 4 and min(sizes) == 1  # lockstep, then the last episode alone
    assert sum(sizes) == EPISODES * STEPS  # one answer per episode-step, no more


class _FaultyEpisodes(ScriptedSortController):
    """Returns a NaN action at step 10 of episode 2 and a wrong shape at step 20 of episode 3."""

    def __init__(self) -> None:
        super().__init__("kr-changwon")
        self.steps: dict[str, int] = {}

    def reset(self, session: SessionInfo) -> None:
        self.steps[session.session_id] = 0

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        step = self.steps[session.session_id]
        self.steps[session.session_id] = step + 1
        action = super().act(session, observation)
        if (session.episode, step) == (2, 10):
            return np.full(4, np.nan, np.float32)
        if (session.episode, step) == (3, 20):
            return action[:3]
        return action


def test_a_fault_in_one_episode_of_a_batch_is_that_episodes_alone(tmp_path: Path) -> None:
    faulty = serve(_FaultyEpisodes(), "127.0.0.1:0")
    try:
        assert faulty.wait_until_serving(10)
        unary = _run(_remote(faulty.address, tmp_path, "policy.mode=unary"), tmp_path, "unary")
        batch = ["policy.mode=batch", "policy.batch_size=4"]
        batched = _run(_remote(faulty.address, tmp_path, *batch), tmp_path, "batch")
    finally:
        faulty.stop(grace=0)
    records = _records(batched)
    faults = {r.meta.episode: [(f.step, f.kind) for f in r.meta.faults] for r in records}
    assert faults == {0: [], 1: [], 2: [(10, "invalid_action:non-finite")],
                      3: [(20, "invalid_action:shape")], 4: []}  # fmt: skip
    assert "ActBatch: policy 'scripted-sort@kr-changwon' returned a bad action" in (
        records[2].meta.faults[0].message
    )
    _assert_same_episodes(records, _records(unary))


def test_a_batched_trial_resumes_only_the_missing_episodes(
    server: PolicyServer, tmp_path: Path
) -> None:
    overrides = _remote(server.address, tmp_path, "policy.mode=batch", "policy.batch_size=2")
    trial_dir = _run(overrides, tmp_path, "resume")
    first = {r.meta.episode: r for r in _records(trial_dir)}
    written = {p.name: p.stat().st_mtime_ns for p in trial_dir.glob(RECORD_GLOB)}
    (trial_dir / "DONE").unlink()
    lost = sorted(trial_dir.glob(RECORD_GLOB))[2]
    lost.unlink()
    config = compose([*overrides, "campaign.name=resume", f"campaign.episodes={EPISODES + 2}"])
    outcome = run_trial(config, trial_dir)
    assert outcome.status == "done" and outcome.episodes_run == 3, outcome  # 2 new, 1 lost
    again = {r.meta.episode: r for r in _records(trial_dir)}
    assert sorted(again) == list(range(EPISODES + 2))
    kept = {p.name: p.stat().st_mtime_ns for p in trial_dir.glob(RECORD_GLOB)}
    assert {n: kept[n] for n in written if n != lost.name} == {
        n: t for n, t in written.items() if n != lost.name
    }  # untouched records are not written again
    _assert_same_episodes([again[2]], [first[2]])


def test_a_batch_over_the_servers_max_batch_fails_the_trial_at_the_handshake(
    tmp_path: Path,
) -> None:
    small = serve(_MaxBatch2(), "127.0.0.1:0")
    try:
        assert small.wait_until_serving(10)
        overrides = _remote(small.address, tmp_path, "policy.mode=batch", "policy.batch_size=3")
        config = compose([*overrides, "campaign.name=over"])
        outcome = run_trial(config, tmp_path / config.trial_name)
    finally:
        small.stop(grace=0)
    assert outcome.status == "failed"
    assert "capabilities.max_batch: expected <= 2 (the server's max_batch), got 3" in (
        outcome.reason
    )


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="policy.batch_size: expected >= 1, got 0"):
        compose([*FAST, "policy.mode=batch", "policy.batch_size=0"])


def test_observation_form_must_be_known() -> None:
    with pytest.raises(ValueError, match=r"policy.observation_form: expected one of \('auto'"):
        compose([*FAST, "policy.observation_form=zip"])


class _MaxBatch2(ScriptedSortController):
    def __init__(self) -> None:
        super().__init__("kr-changwon")

    def spec(self):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        spec = super().spec()
        return replace(spec, capabilities=replace(spec.capabilities, max_batch=2))


def test_a_managed_server_killed_mid_batch_ends_the_episodes_in_flight_and_restarts(
    tmp_path: Path,
) -> None:
    config = compose([*FAST, "policy.mode=batch", "policy.batch_size=2", "campaign.episodes=6",
                      "task.max_steps=150", f"campaign.dir={tmp_path}"])  # fmt: skip
    trial_dir = tmp_path / config.trial_name
    killed: list[int] = []

    def kill_after_first_batch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if len(list(trial_dir.glob(RECORD_GLOB))) >= 2 and managed_servers():
                time.sleep(0.3)  # inside episodes 2 and 3 by now
                for pid in managed_servers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_first_batch, daemon=True)
    killer.start()
    outcome = run_trial(config, trial_dir)
    killer.join(5)
    assert killed, "the test never saw the managed server"
    assert outcome.status == "done", outcome.reason
    records = _records(trial_dir)
    assert [r.meta.episode for r in records] == list(range(6))  # nothing lost, nothing twice
    faulted = [r.meta for r in records if r.meta.faults]
    assert faulted and all(m.ended_by == "fault" for m in faulted)
    assert {f.kind for m in faulted for f in m.faults} == {"PolicyUnavailableError"}
    assert records[-1].meta.ended_by == "max_steps" and not records[-1].meta.faults
    log = (trial_dir / "policy_server.log").read_text()
    assert log.count("serving 127.0.0.1:") == 2, log  # restarted once
    assert not managed_servers()  # stopped at the end of the trial
