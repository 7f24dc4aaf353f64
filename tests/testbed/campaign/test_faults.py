"""Trials against a fault-injecting policy server: they finish, record every fault, lose nothing.

The server (`tests.testbed.faults`) runs as its own process tree (a supervisor restarts it when a
fault kills it), reached as a ``remote`` policy, the way an outside team's server is. Each
injected fault is logged by the server; every one must appear on its episode, at its step, with
the kind the testbed gives it, and every episode of the trial must be recorded exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from testbed.campaign.trial import run_trial
from testbed.episodes.records import RECORD_GLOB, read_meta
from tests.testbed.faults import KINDS, RECORDED_AS, read_log, start_fault_server, stop_fault_server

from .helpers import FAST, compose

EPISODES, STEPS = 6, 60
SEED, RATE = 11, 0.06  # a schedule that hits every kind across the two modes (asserted below)
INJECTED: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("faults") / "injected.jsonl"
    process, address = start_fault_server(SEED, log, rate=RATE, late_s=0.6)
    yield address, log
    stop_fault_server(process)


@pytest.fixture(scope="module", autouse=True)
def report(pytestconfig: pytest.Config):
    yield
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter and capture and INJECTED:
        with capture.global_and_fixture_disabled():
            kinds = ", ".join(f"{k} {INJECTED[k]}" for k in KINDS)
            reporter.write_line(f"\nfaults injected: {sum(INJECTED.values())} ({kinds})")


@pytest.mark.parametrize("mode", ["unary", "stream", "batch"])
def test_a_trial_against_a_faulty_server_records_every_fault_and_loses_nothing(
    fault_server: tuple[str, Path], mode: str, tmp_path: Path
) -> None:
    address, log = fault_server
    campaign = f"faults-{mode}"
    config = compose([*FAST, "policy=remote", "policy.name=faulty", f"policy.mode={mode}",
                      "policy.home_site=kr-changwon", f"policy.address={address}",
                      "policy.deadline_ms=300", f"campaign.episodes={EPISODES}",
                      "policy.batch_size=4",
                      f"task.max_steps={STEPS}", f"campaign.name={campaign}",
                      f"campaign.dir={tmp_path}"])  # fmt: skip
    trial_dir = tmp_path / config.trial_name
    outcome = run_trial(config, trial_dir)
    assert outcome.status == "done", outcome.reason

    metas = [read_meta(p) for p in sorted(trial_dir.glob(RECORD_GLOB))]
    assert [m.episode for m in metas] == list(range(EPISODES))  # none lost, none twice
    assert not list(trial_dir.rglob("*.tmp"))
    injected = [f for f in read_log(log) if f["campaign"] == campaign]
    assert injected, "the schedule injected nothing"
    recorded = {(m.episode, f.step): f for m in metas for f in m.faults}
    for fault in injected:
        found = recorded.get((fault["episode"], fault["step"]))
        assert found is not None, f"injected {fault} is not on its episode"
        assert found.kind == RECORDED_AS[fault["kind"]], (fault, found)
        assert found.message  # the reason, e.g. "Act: no answer within 300 ms"
    extra = [f for key, f in recorded.items() if key not in
             {(i["episode"], i["step"]) for i in injected}]  # fmt: skip
    # Only load can add faults (late answers); in a batch, a server that crashed, restarted or
    # hung also fails the other episodes of that call, as a dead server fails each episode.
    shared = ("deadline", "PolicyUnavailableError") if mode == "batch" else ("deadline",)
    assert all(f.kind in shared for f in extra), extra
    ended = {m.episode for m in metas if m.ended_by == "fault"}
    fatal = {f["episode"] for f in injected if RECORDED_AS[f["kind"]] == "PolicyUnavailableError"}
    if mode == "batch":  # the episodes whose connection broke, and those sharing their call
        assert fatal <= ended
        assert all(any(f.kind == "PolicyUnavailableError" for f in m.faults)
                   for m in metas if m.episode in ended)  # fmt: skip
    else:
        assert ended == fatal  # exactly the episodes whose connection broke ended early
    INJECTED.update(f["kind"] for f in injected)


def test_every_kind_of_fault_was_injected() -> None:
    if sum(INJECTED.values()) == 0:
        pytest.skip("runs after the trials")
    assert set(INJECTED) == set(KINDS), INJECTED
