"""Derive a site's arrival process (part mix and inter-arrival gaps) from its production log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from envs.factory.schema import Arrival, ArrivalProcess

ARRIVE = "arrive"
"""The activity that marks a part entering the cell; only these rows define the process."""


def arrive_events(arrivals: Iterable[Arrival]) -> list[Arrival]:
    """Return the ``arrive`` events of a log, sorted by timestamp (stable for equal timestamps).

    Args:
        arrivals: Production-log rows in any order.

    Returns:
        The rows whose activity is ``arrive``, earliest first.
    """
    return sorted((a for a in arrivals if a.activity == ARRIVE), key=lambda a: a.timestamp)


def derive_arrival_process(arrivals: Iterable[Arrival]) -> ArrivalProcess:
    """Empirical inter-arrival gaps and part shares of the log's ``arrive`` events.

    Gaps are taken between consecutive ``arrive`` events sorted by timestamp; zero gaps (parts
    logged at the same instant) are dropped, since an episode resamples gaps and a zero gap
    would drop two parts on top of each other. Shares count every ``arrive`` event.

    Args:
        arrivals: Production-log rows in any order; other activities are ignored.

    Returns:
        The arrival process, with ``part_shares`` keyed by part_id in sorted order.

    Raises:
        ValueError: If there are fewer than two ``arrive`` events or no positive gap, or if
            naive and timezone-aware timestamps are mixed.
    """
    events = _sorted_arrivals(arrivals)
    if len(events) < 2:
        raise ValueError(f"need at least 2 '{ARRIVE}' events to derive gaps, got {len(events)}")
    gaps = tuple(
        (later.timestamp - earlier.timestamp).total_seconds()
        for earlier, later in zip(events, events[1:], strict=False)
    )
    positive = tuple(gap for gap in gaps if gap > 0)
    if not positive:
        raise ValueError(f"all {len(events)} '{ARRIVE}' events share one timestamp")
    counts = Counter(event.part_id for event in events)
    shares = {part_id: counts[part_id] / len(events) for part_id in sorted(counts)}
    return ArrivalProcess(inter_arrival_s=positive, part_shares=shares)


def _sorted_arrivals(arrivals: Iterable[Arrival]) -> list[Arrival]:
    events = [a for a in arrivals if a.activity == ARRIVE]
    aware = {a.timestamp.tzinfo is not None for a in events}
    if len(aware) > 1:
        raise ValueError("timestamps mix timezone-aware and naive values; give every one an offset")
    return arrive_events(events)
