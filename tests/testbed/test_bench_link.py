"""The policy-link figures on tiny counts: named and packed rows side by side, with goals."""

from __future__ import annotations

import dataclasses
import math

from testbed.bench import policy_link
from testbed.bench.figures import QUICK
from testbed.cli.bench import _serve


def test_link_figures_put_packed_rows_next_to_the_named_ones() -> None:
    profile = dataclasses.replace(QUICK, link_steps=20, link_rounds=1)
    seen: list[str] = []
    figures, notes = policy_link.run(profile, _serve, seen.append)
    by_name = {f.name: f for f in figures}
    assert seen == ["link: round 1/1"] and notes == []
    for mode in ("unary", "stream"):
        for form, goal in (("named", 1.3), ("packed", 1.2)):
            row = by_name[f"testbed {mode} Act, {form} (p50)"]
            assert row.reference_name == f"echo {mode}" and row.goal == f"<= {goal}x"
            assert row.reference and row.ratio == row.value / row.reference
            assert row.met == (row.ratio <= goal)
    for form, goal in (("named", 0.1), ("packed", 0.08)):
        row = by_name[f"testbed ActBatch x8, {form}, per episode-step (p50)"]
        assert row.goal == f"<= {goal} ms" and row.met == (row.value <= goal)
        assert row.details["round_trips"] == 20
    assert all(math.isfinite(f.value) and f.value > 0 for f in figures)
