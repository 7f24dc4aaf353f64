"""Compute energy of policy calls: measured where a counter is readable, else estimated, labelled.

Shared by the policy server (``policies``, which reports each reply's compute in
``ActResponse.compute``) and the testbed (which measures in-process policies the same way), so
remote and in-process policies are measured by one piece of code.

A `ComputeMeter` brackets one policy call and returns a `ComputeUsage`: the process CPU time of
the call and its energy in joules, with the ``source`` the joules came from:

- ``rapl``: the Linux powercap counters of the CPU packages
  (``/sys/class/powercap/intel-rapl:<n>/energy_uj``, also used for AMD CPUs), read before and
  after the call, with wrap-around at ``max_energy_range_uj``. Package-wide: work of other
  processes on the same packages during the call is counted too. Root-only since Linux 5.10
  and absent in most VMs; then ``auto`` falls back to the estimate.
- ``cpu-estimate``: process CPU time of the call x ``watts_per_core`` (Green Algorithms' model;
  the default `DEFAULT_WATTS_PER_CORE` is their figure for an unknown CPU).
- ``+nvml`` appended: the NVIDIA GPUs' total-energy counters (NVML, millijoules, updated every
  20-100 ms, so one call's share is coarse but the sum over an episode is not), when the
  ``pynvml`` module (package ``nvidia-ml-py``) imports and a GPU answers; whole-GPU, like RAPL.
- ``unknown``: nothing measured (``joules`` is None, never 0): a server that does not report
  compute (protocol 1.0), a call without a reply, or a meter that is ``off``.

Process CPU time counts every thread of the process: a server answering several sessions at
once attributes their concurrent work to each call.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protos.v1 import policy_service_pb2 as pb

RAPL, NVML, CPU_ESTIMATE, UNKNOWN = "rapl", "nvml", "cpu-estimate", "unknown"
#: Watts per busy core for ``cpu-estimate``: the Green Algorithms calculator's figure for an
#: unknown CPU ("Any", 12.0 W per core, data/latest/TDP_cpu.csv of
#: github.com/GreenAlgorithms/green-algorithms-tool; Lannelongue et al., Adv. Sci. 2021).
DEFAULT_WATTS_PER_CORE = 12.0
#: ``ComputeMeter(counter=...)`` choices.
COUNTERS = ("auto", RAPL, CPU_ESTIMATE, "off")
POWERCAP = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")  # packages; intel-rapl:N:M are parts of them


@dataclass(frozen=True)
class ComputeUsage:
    """The compute of one policy call (or a share of one batched call).

    Attributes:
        cpu_seconds: Process CPU time (user + system) the call took.
        joules: Energy of the call, or None when unknown (never 0 for unknown).
        source: Where ``joules`` came from: ``rapl``, ``cpu-estimate``, either with
            ``+nvml``, or ``unknown``.
    """

    cpu_seconds: float
    joules: float | None
    source: str

    def share(self, parts: int) -> ComputeUsage:
        """The usage split evenly over ``parts`` (the items of one ActBatch reply)."""
        joules = None if self.joules is None else self.joules / parts
        return ComputeUsage(self.cpu_seconds / parts, joules, self.source)


#: What a call without a measurement reports.
UNMEASURED = ComputeUsage(0.0, None, UNKNOWN)


class RaplCounter:
    """The package energy counters under a powercap folder (``/sys/class/powercap``).

    Args:
        root: The powercap folder (a test passes a folder laid out like sysfs).

    Attributes:
        zones: The package zone folders that could be read (empty: RAPL unreadable here).
    """

    def __init__(self, root: Path = POWERCAP) -> None:
        self.zones: list[Path] = []
        self._ranges: list[int] = []
        candidates = sorted(root.glob("intel-rapl:*")) if root.is_dir() else []
        for zone in candidates:
            if not _PACKAGE_ZONE.match(zone.name):
                continue
            try:
                int((zone / "energy_uj").read_text())
                self._ranges.append(int((zone / "max_energy_range_uj").read_text()))
            except (OSError, ValueError):  # root-only since Linux 5.10: PermissionError
                continue
            self.zones.append(zone)

    @property
    def readable(self) -> bool:
        """True when at least one package counter could be read."""
        return bool(self.zones)

    def read(self) -> tuple[int, ...]:
        """Each package counter now, in microjoules."""
        return tuple(int((zone / "energy_uj").read_text()) for zone in self.zones)

    def joules(self, before: tuple[int, ...], after: tuple[int, ...]) -> float:
        """Joules between two readings; a counter that wrapped adds its range once."""
        total = 0
        for start, end, span in zip(before, after, self._ranges, strict=True):
            total += end - start if end >= start else end + span - start
        return total / 1e6


class NvmlCounter:
    """The total-energy counters of every NVIDIA GPU, through NVML (``pynvml``), if available.

    Attributes:
        readable: True when ``pynvml`` imported and every GPU answered (at least one GPU).
    """

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml  # optional: the nvidia-ml-py package (extra "gpu-energy")

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            for handle in handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # Volta and newer
        except Exception:  # no module, no driver, no GPU, or a GPU without the counter
            return
        self._nvml, self._handles = pynvml, handles

    @property
    def readable(self) -> bool:
        """True when the GPUs' energy counters can be read."""
        return bool(self._handles)

    def read(self) -> tuple[int, ...]:
        """Each GPU's counter now, in millijoules."""
        read = self._nvml.nvmlDeviceGetTotalEnergyConsumption
        return tuple(int(read(handle)) for handle in self._handles)

    @staticmethod
    def joules(before: tuple[int, ...], after: tuple[int, ...]) -> float:
        """Joules between two readings (a 64-bit counter: no wrap in practice)."""
        return sum(max(end - start, 0) for start, end in zip(before, after, strict=True)) / 1e3


@dataclass(frozen=True)
class _Mark:
    cpu: float
    rapl: tuple[int, ...]
    nvml: tuple[int, ...]


class ComputeMeter:
    """Measures policy calls: `start` before the call, `stop` after it.

    Args:
        counter: ``auto`` (RAPL where readable, else the CPU-time estimate), ``rapl`` (RAPL or
            an error), ``cpu-estimate``, or ``off`` (nothing measured: `stop` returns
            `UNMEASURED`). Any but ``off`` adds the NVIDIA GPUs' counters where NVML answers.
        watts_per_core: Watts per busy core for the estimate.
        powercap: The powercap folder RAPL is read from.
        gpu: Look for NVML; False skips it (tests, or a policy known not to use the GPU).

    Raises:
        ValueError: On an unknown ``counter``, a ``watts_per_core`` that is not > 0, or
            ``counter="rapl"`` where no package counter is readable.
    """

    def __init__(
        self,
        counter: str = "auto",
        watts_per_core: float = DEFAULT_WATTS_PER_CORE,
        *,
        powercap: Path = POWERCAP,
        gpu: bool = True,
    ) -> None:
        if counter not in COUNTERS:
            raise ValueError(f"compute counter: expected one of {COUNTERS}, got {counter!r}")
        if not watts_per_core > 0:
            raise ValueError(f"watts_per_core: expected > 0, got {watts_per_core!r}")
        self.watts_per_core = float(watts_per_core)
        self.off = counter == "off"
        rapl = RaplCounter(powercap) if counter in ("auto", RAPL) else None
        if counter == RAPL and not (rapl and rapl.readable):
            raise ValueError(
                f"compute counter 'rapl': no readable {powercap}/intel-rapl:<n>/energy_uj "
                "(absent, or root-only since Linux 5.10); use 'auto' or 'cpu-estimate'"
            )
        self._rapl = rapl if rapl is not None and rapl.readable else None
        nvml = NvmlCounter() if gpu and not self.off else None
        self._nvml = nvml if nvml is not None and nvml.readable else None
        cpu_source = RAPL if self._rapl is not None else CPU_ESTIMATE
        self.source = UNKNOWN if self.off else cpu_source + (f"+{NVML}" if self._nvml else "")

    def start(self) -> _Mark:
        """Read the counters before a call."""
        rapl = self._rapl.read() if self._rapl is not None else ()
        nvml = self._nvml.read() if self._nvml is not None else ()
        return _Mark(time.process_time(), rapl, nvml)

    def stop(self, mark: _Mark) -> ComputeUsage:
        """The usage since `start` returned ``mark``."""
        cpu = max(time.process_time() - mark.cpu, 0.0)
        if self.off:
            return UNMEASURED
        if self._rapl is not None:
            joules = self._rapl.joules(mark.rapl, self._rapl.read())
        else:
            joules = cpu * self.watts_per_core
        if self._nvml is not None:
            joules += self._nvml.joules(mark.nvml, self._nvml.read())
        return ComputeUsage(cpu, joules, self.source)


def usage_to_proto(usage: ComputeUsage, message: pb.ComputeUsage) -> None:
    """Write ``usage`` into ``message`` (``ActResponse.compute``); unknown joules stay unset."""
    message.cpu_seconds = usage.cpu_seconds
    message.source = usage.source
    if usage.joules is None:
        message.ClearField("joules")
    else:
        message.joules = usage.joules


def usage_from_proto(reply: pb.ActResponse) -> ComputeUsage:
    """The compute a reply reports; `UNMEASURED` when the server sent none (protocol 1.0)."""
    if not reply.HasField("compute"):
        return UNMEASURED
    compute = reply.compute
    joules = compute.joules if compute.HasField("joules") else None
    if joules is not None and not 0 <= joules < float("inf"):
        joules = None  # a negative or non-finite figure is no measurement
    source = compute.source[:64] if joules is not None and compute.source else UNKNOWN
    cpu = compute.cpu_seconds if 0 <= compute.cpu_seconds < float("inf") else 0.0
    return ComputeUsage(cpu, joules, source)
