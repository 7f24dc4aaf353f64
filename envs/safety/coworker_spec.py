"""site.yaml's ``coworkers:``: people who walk into the cell, from the bundle.

Each co-worker walks along a ``walkway`` station of stations.csv (its local +x from one end to
the other), stays ``dwell_s`` at the far end (restocking a bin, say), and walks back. Visits
start at ``first_arrival_s`` and then after seeded exponential gaps of mean ``mean_gap_s``
(0: one visit per episode).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from envs.factory._model import IDENTIFIER_PATTERN, Frozen


class CoworkerSpec(Frozen):
    """One person who enters the cell."""

    name: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
    walkway: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
    """The ``walkway`` station the person walks along."""
    speed_mps: Annotated[float, Field(gt=0, le=2.0, allow_inf_nan=False)] = 1.0
    first_arrival_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 5.0
    mean_gap_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 0.0
    """Mean time between the end of one visit and the start of the next (0: one visit)."""
    dwell_s: Annotated[float, Field(ge=0, le=600, allow_inf_nan=False)] = 3.0
    height_m: Annotated[float, Field(ge=1.4, le=2.1, allow_inf_nan=False)] = 1.75
    collaborative_zone_m: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 1.5
    """Horizontal distance from the robot base within which the person shares the cell with
    it: the TCP must keep to the jurisdiction's reduced speed while the person is inside."""
