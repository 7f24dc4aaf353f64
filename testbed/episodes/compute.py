"""The policy's compute over an episode: each call measured the same way, wherever it ran.

`PolicyMeter` measures one policy call: a policy that reports its own compute (``compute_of``,
as `testbed.link.client.RemotePolicy` does with the server's ``ActResponse.compute``) is taken
at its word; any other (in-process) is bracketed by a `protos.compute.ComputeMeter`, the same
meter a policy server uses. `ComputeTally` adds an episode's calls up for its record
(`testbed.episodes.records.EpisodeMeta.compute`).

A call without a measurement (an old server, a call that got no reply) adds to ``calls`` but not
to the joules: the episode's joules and its actions cover the measured calls only, so J per
action is never diluted by unknowns, and an episode with no measured call has joules None
(unknown), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from protos.compute import UNKNOWN, ComputeMeter, ComputeUsage
from protos.specs import SessionInfo


@cache
def default_meter() -> ComputeMeter:
    """The meter of callers that name none (built once: it probes sysfs and NVML)."""
    return ComputeMeter()


class PolicyMeter:
    """Measures the calls of one policy (its own report where it gives one).

    Args:
        policy: The policy called.
        meter: Brackets calls of a policy without ``compute_of``; None: `default_meter`.
    """

    def __init__(self, policy: Any, meter: ComputeMeter | None = None) -> None:
        self._reported = getattr(policy, "compute_of", None)
        self.meter = meter if meter is not None else default_meter()

    @property
    def reported(self) -> bool:
        """True when the policy reports its own compute (a remote server)."""
        return self._reported is not None

    def start(self) -> Any:
        """Before a call: read the counters (nothing for a policy that reports its own)."""
        return None if self._reported is not None else self.meter.start()

    def stop(self, mark: Any, sessions: Sequence[SessionInfo]) -> list[ComputeUsage]:
        """After a call for ``sessions``: each session's usage (a batched call split evenly)."""
        if self._reported is not None:
            return [self._reported(session) for session in sessions]
        usage = self.meter.stop(mark).share(max(len(sessions), 1))
        return [usage] * len(sessions)


@dataclass
class ComputeTally:
    """An episode's policy compute, call by call.

    Attributes:
        calls: Policy calls made.
        measured_calls: Calls whose joules are known.
        actions: Actions those measured calls returned (a chunk counts each action; a call
            whose answer was refused or missing counts none).
        cpu_seconds: CPU time of the measured calls.
        joules: Energy of the measured calls.
        sources: Their ``source`` labels.
    """

    calls: int = 0
    measured_calls: int = 0
    actions: int = 0
    cpu_seconds: float = 0.0
    joules: float = 0.0
    sources: set[str] = field(default_factory=set)

    def add(self, usage: ComputeUsage | None, actions: int) -> None:
        """Count one call that returned ``actions`` actions (0 when refused or missing)."""
        self.calls += 1
        if usage is None or usage.joules is None:
            return
        self.measured_calls += 1
        self.actions += actions
        self.cpu_seconds += usage.cpu_seconds
        self.joules += usage.joules
        self.sources.add(usage.source)

    def summary(
        self,
        watts_per_core: float | None = None,
        price_per_kwh: float | None = None,
        currency: str = "",
    ) -> dict[str, Any]:
        """The record's ``compute`` entry; ``joules`` None when no call was measured.

        Args:
            watts_per_core: The testbed meter's figure, kept where it made a ``cpu-estimate``
                (None for a policy that reports its own compute: the server's figure is its
                own).
            price_per_kwh: The configured energy price (None: not set).
            currency: Its currency.
        """
        source = ", ".join(sorted(self.sources)) if self.sources else UNKNOWN
        return {
            "joules": self.joules if self.measured_calls else None,
            "cpu_seconds": self.cpu_seconds,
            "calls": self.calls,
            "measured_calls": self.measured_calls,
            "actions": self.actions,
            "source": source if len(self.sources) <= 1 else f"mixed: {source}",
            "watts_per_core": watts_per_core if "cpu-estimate" in source else None,
            "price_per_kwh": price_per_kwh,
            "currency": currency,
        }
