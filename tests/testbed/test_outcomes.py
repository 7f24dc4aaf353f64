"""Outcome reasons: one per episode, from the fault, the env's summary, or its part counts."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from protos.specs import SessionInfo
from testbed.episodes.outcomes import outcome_category, outcome_reason
from testbed.episodes.records import EpisodeMeta, Fault
from testbed.episodes.rollout import EpisodeResult
from testbed.episodes.rows import episode_row
from testbed.results.evaluator import transfer_matrix

LOST = "lost: KR-CAP-300 at step 695"


@pytest.mark.parametrize(
    ("ended_by", "faults", "metrics", "reason"),
    [
        ("terminated", [], {"success_at_end": True, "outcome": "success"}, "success"),
        ("terminated", [], {"success_at_end": True}, "success"),
        ("terminated", [], {"success_at_end": False, "outcome": LOST}, LOST),
        ("fault", [("deadline", "late")], {}, "policy fault: deadline"),
        ("fault", [("invalid_action:dtype", "float64")], {}, "policy fault: invalid_action:dtype"),
        ("fault", [("PolicyUnavailableError", "gone")], {}, "policy fault: unavailable"),
        ("fault", [("PolicyProtocolError", "bad reply")], {}, "policy fault: protocol"),
        (
            "fault",
            [("deadline", "late"), ("fault_limit", "20 faulty policy calls in a row")],
            {},
            "policy fault: deadline (20 faulty policy calls in a row)",
        ),
        # A fault ends the episode: the env's summary (if any) does not say why.
        ("fault", [("deadline", "late")], {"success_at_end": True}, "policy fault: deadline"),
        # Records without the env's reason: derived from the part counts.
        ("terminated", [], {"parts_total": 3, "parts_lost": 2}, "lost: 2 of 3 parts"),
        ("terminated", [], {"parts_total": 3, "parts_wrong_bin": 1}, "wrong bin: 1 of 3 parts"),
        (
            "truncated",
            [],
            {"parts_total": 3, "parts_sorted": 2, "parts_lost": 0},
            "time limit with 2/3 parts sorted",
        ),
        ("max_steps", [], {"parts_total": 3, "parts_sorted": 0}, "step cap with 0/3 parts sorted"),
        ("truncated", [], {"success_at_end": False}, "time limit"),
        # An env that says success beside success_at_end False is not believed.
        (
            "truncated",
            [],
            {"success_at_end": False, "outcome": "success", "parts_total": 2, "parts_sorted": 1},
            "time limit with 1/2 parts sorted",
        ),
        ("max_steps", [], {}, "unknown (no episode summary; ended by max_steps)"),
    ],
)
def test_every_episode_gets_a_reason(
    ended_by: str, faults: list[tuple[str, str]], metrics: dict, reason: str
) -> None:
    assert outcome_reason(ended_by, faults, metrics) == reason


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        (LOST, "lost"),
        ("wrong bin: KR-CAP-300 in bin2 at step 540", "wrong bin"),
        ("time limit with 2/3 parts sorted", "time limit"),
        ("lost: 2 of 3 parts", "lost"),
        ("policy fault: deadline", "policy fault: deadline"),
        ("policy fault: invalid_action:dtype", "policy fault: invalid_action:dtype"),
        ("policy fault: deadline (20 faulty policy calls in a row)", "policy fault: deadline"),
        ("protective stop at step 40", "protective stop"),
        ("unknown (no episode summary; ended by fault)", "unknown"),
        ("", "unknown"),
    ],
)
def test_categories_strip_part_bin_and_step(reason: str, category: str) -> None:
    assert outcome_category(reason) == category


def _meta(**changes: object) -> EpisodeMeta:
    base: dict = {"env_id": "Testbed/ConveyorSort-v0", "env_kwargs": {}, "site": "s",
                  "bundle_hash": "b", "seed": 0, "episode": 0}  # fmt: skip
    return EpisodeMeta(**{**base, **changes})


def test_the_meta_stores_its_outcome_and_old_records_get_one() -> None:
    meta = _meta(ended_by="terminated", metrics={"success_at_end": False, "outcome": LOST})
    stored = json.loads(meta.to_json())
    assert stored["outcome"] == LOST
    assert EpisodeMeta.from_json(meta.to_json()).outcome == LOST
    # A record written before outcomes were stored: no key anywhere, a reason all the same.
    del stored["outcome"], stored["metrics"]["outcome"]
    stored["metrics"].update(parts_total=3, parts_lost=1)
    assert EpisodeMeta.from_json(json.dumps(stored)).outcome == "lost: 1 of 3 parts"
    faulted = _meta(ended_by="fault", faults=(Fault(3, "PolicyUnavailableError", "gone"),))
    assert faulted.outcome == "policy fault: unavailable"


def test_the_rollout_result_says_why_a_fault_ended_it() -> None:
    session = SessionInfo(session_id="t", site="s", campaign="c", episode=0, seed=0)
    result = EpisodeResult(session, "p@1", ended_by="fault", faults=[(0, "deadline", "late")])
    assert result.outcome == "policy fault: deadline"
    done = EpisodeResult(session, "p@1", ended_by="truncated", metrics={"outcome": LOST})
    assert done.outcome == LOST


def test_a_string_outcome_in_the_metrics_aggregates_cleanly() -> None:
    """The env's ``outcome`` string rides along in the metrics; nothing numeric chokes on it."""
    rows = []
    for seed in range(4):
        success = seed == 0
        metrics = {
            "success_at_end": success,
            "outcome": "success" if success else f"lost: P{seed} at step {seed * 10}",
            "energy_per_part_j": 5.0 + seed,
            "cycle_time_s": 2.0,
            "violations_tcp_speed": 1,
            "steps": 100,
        }
        meta = _meta(seed=seed, ended_by="terminated", metrics=metrics, policy="p", home_site="s")
        rows.append({**episode_row(meta, np.array([1.0, 2.0])), "success": success})
    df = pd.DataFrame(rows)
    assert list(df["outcome"]) == ["success", "lost: P1 at step 10", "lost: P2 at step 20",
                                   "lost: P3 at step 30"]  # fmt: skip
    cell = transfer_matrix(df).cell("p", "s")
    assert cell is not None and (cell.episodes, cell.successes) == (4, 1)
    assert not math.isnan(cell.energy_per_part_j.value)
    assert [(f.category, f.episodes, f.example) for f in cell.failures] == [
        ("lost", 3, "lost: P1 at step 10")
    ]
    df.to_parquet(io.BytesIO(), index=False)  # a column of mixed types would refuse
