"""Why an episode ended the way it did: one outcome reason per episode, and its category.

The reason is ``success``; ``policy fault: <kind>`` when the episode ended on a policy fault
(``policy fault: deadline``, ``policy fault: invalid_action:dtype``, ``policy fault:
unavailable``); otherwise the ``outcome`` string of the env's episode summary (``lost:
KR-CAP-300 at step 695``, ``wrong bin: KR-CAP-300 in bin2 at step 540``, ``time limit with 2/3
parts sorted``). Records of envs (or testbed versions) without that key get a reason derived
from the summary's part counts (``lost: 2 of 3 parts``), never an empty one.

The category groups reasons for counting: the part id, bin and step are stripped (``lost``,
``wrong bin``, ``time limit``), a policy fault keeps its kind (``policy fault: deadline``).

A leaf module (no testbed imports), used by the records, the episode browser and the report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

SUCCESS = "success"
POLICY_FAULT = "policy fault"
UNKNOWN = "unknown"
#: The key of the env's episode summary that holds its outcome reason.
SUMMARY_KEY = "outcome"
#: The key of the env's episode summary that says whether the episode succeeded (its end state).
SUCCESS_KEY = "success_at_end"
#: The fault `testbed.episodes.rollout` records when a policy failed too many calls in a row.
FAULT_LIMIT = "fault_limit"


def outcome_reason(
    ended_by: str, faults: Sequence[tuple[str, str]], metrics: Mapping[str, Any]
) -> str:
    """The outcome reason of an episode (see the module docstring).

    Args:
        ended_by: ``terminated``, ``truncated``, ``fault`` or ``max_steps``.
        faults: ``(kind, message)`` of the policy faults recorded, in step order.
        metrics: The env's episode summary (empty when the episode ended on a fault).
    """
    if ended_by == "fault":
        return fault_reason(faults)
    if metrics.get(SUCCESS_KEY) is True or metrics.get(SUCCESS_KEY) == 1:
        return SUCCESS
    given = metrics.get(SUMMARY_KEY)
    if isinstance(given, str) and given.strip() and given.strip() != SUCCESS:
        return given.strip()
    return _derived(ended_by, metrics)


def fault_reason(faults: Sequence[tuple[str, str]]) -> str:
    """``policy fault: <kind>`` for an episode that ended on its last fault.

    After a run of faulty calls (`FAULT_LIMIT`) the kind is that of the faults before it, with
    the count in parentheses: ``policy fault: deadline (20 faulty policy calls in a row)``.
    """
    if not faults:
        return f"{POLICY_FAULT}: {UNKNOWN}"
    kind, message = faults[-1]
    if kind == FAULT_LIMIT and len(faults) > 1:
        return f"{POLICY_FAULT}: {fault_kind(faults[-2][0])} ({message})"
    return f"{POLICY_FAULT}: {fault_kind(kind)}"


def fault_kind(kind: str) -> str:
    """A fault kind as reasons show it: ``PolicyUnavailableError`` -> ``unavailable``.

    Kinds that are not an error class name (``deadline``, ``invalid_action:dtype``) are kept.
    """
    match = re.fullmatch(r"Policy(\w*?)Error", kind)
    if match is None:
        return kind or UNKNOWN
    return match.group(1).lower() or "error"


def outcome_category(reason: str) -> str:
    """The group of ``reason`` for counting: part id, bin, step and counts stripped.

    ``lost: KR-CAP-300 at step 695`` -> ``lost``; ``time limit with 2/3 parts sorted`` ->
    ``time limit``; ``policy fault: deadline (20 faulty policy calls in a row)`` -> ``policy
    fault: deadline``.
    """
    head = reason.split(" (", 1)[0].strip()
    if head.startswith(f"{POLICY_FAULT}:"):
        return head
    head = head.split(":", 1)[0]
    head = re.split(r"\s+(?:with|at step|after)\s", head, maxsplit=1)[0].strip()
    return head or UNKNOWN


def _derived(ended_by: str, metrics: Mapping[str, Any]) -> str:
    """A reason from the summary's counts, for records without the env's ``outcome``."""
    if not metrics:
        return f"{UNKNOWN} (no episode summary; ended by {ended_by or UNKNOWN})"
    total = _count(metrics.get("parts_total"))
    of = f" of {total}" if total is not None else ""
    lost, wrong = _count(metrics.get("parts_lost")), _count(metrics.get("parts_wrong_bin"))
    if lost:
        return f"lost: {lost}{of} {_parts(lost if total is None else total)}"
    if wrong:
        return f"wrong bin: {wrong}{of} {_parts(wrong if total is None else total)}"
    done = _count(metrics.get("parts_sorted"))
    progress = f" with {done}/{total} parts sorted" if done is not None and total else ""
    if ended_by == "truncated":
        return f"time limit{progress}"
    if ended_by == "max_steps":
        return f"step cap{progress}"
    return f"not successful{progress} (ended by {ended_by or UNKNOWN})"


def _count(value: Any) -> int | None:
    """A part count from the summary, or None when absent or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _parts(n: int) -> str:
    return "part" if n == 1 else "parts"
