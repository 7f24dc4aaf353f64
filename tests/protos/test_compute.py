"""The compute meter: RAPL read from a sysfs-like folder (wrap-around included), the CPU-time
estimate, and the ActResponse.compute field both ways."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from protos.compute import (
    CPU_ESTIMATE,
    DEFAULT_WATTS_PER_CORE,
    RAPL,
    UNKNOWN,
    UNMEASURED,
    ComputeMeter,
    ComputeUsage,
    RaplCounter,
    usage_from_proto,
    usage_to_proto,
)
from protos.v1 import policy_service_pb2 as pb


def _zone(root: Path, name: str, energy_uj: int, range_uj: int = 262_143_328_850) -> Path:
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return zone


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_rapl_reads_package_zones_only(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 1_000_000)
    _zone(tmp_path, "intel-rapl:1", 5_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 7)  # the cores of package 0: part of it, not added
    (tmp_path / "intel-rapl-mmio:0").mkdir()
    counter = RaplCounter(tmp_path)
    assert [z.name for z in counter.zones] == ["intel-rapl:0", "intel-rapl:1"]
    before = counter.read()
    assert before == (1_000_000, 5_000_000)
    _zone(tmp_path, "intel-rapl:0", 3_500_000)
    _zone(tmp_path, "intel-rapl:1", 6_000_000)
    assert counter.joules(before, counter.read()) == pytest.approx(2.5 + 1.0)


def test_rapl_wraps_at_the_counters_range(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 999_000, range_uj=1_000_000)
    counter = RaplCounter(tmp_path)
    before = counter.read()
    _zone(tmp_path, "intel-rapl:0", 500, range_uj=1_000_000)  # wrapped past 1,000,000
    assert counter.joules(before, counter.read()) == pytest.approx((1_000 + 500) / 1e6)


def test_unreadable_rapl_falls_back_to_the_estimate(tmp_path: Path) -> None:
    zone = _zone(tmp_path, "intel-rapl:0", 1)
    (zone / "energy_uj").write_text("not a number")  # as unreadable as a root-only file
    assert not RaplCounter(tmp_path).readable
    assert not RaplCounter(tmp_path / "absent").readable
    meter = ComputeMeter(powercap=tmp_path, gpu=False)
    assert meter.source == CPU_ESTIMATE
    with pytest.raises(ValueError, match="no readable .*intel-rapl"):
        ComputeMeter("rapl", powercap=tmp_path, gpu=False)


def test_meter_uses_rapl_when_readable(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 10_000_000)
    meter = ComputeMeter(powercap=tmp_path, gpu=False)
    assert meter.source == RAPL
    mark = meter.start()
    _zone(tmp_path, "intel-rapl:0", 10_250_000)
    usage = meter.stop(mark)
    assert usage.source == RAPL and usage.joules == pytest.approx(0.25)


def test_cpu_estimate_is_cpu_time_times_watts_per_core(tmp_path: Path) -> None:
    meter = ComputeMeter("cpu-estimate", watts_per_core=20.0, powercap=tmp_path, gpu=False)
    mark = meter.start()
    _busy(0.05)
    usage = meter.stop(mark)
    assert usage.source == CPU_ESTIMATE
    assert usage.cpu_seconds >= 0.05
    assert usage.joules == pytest.approx(usage.cpu_seconds * 20.0)
    assert DEFAULT_WATTS_PER_CORE == 12.0


def test_off_meter_reports_unknown_not_zero(tmp_path: Path) -> None:
    meter = ComputeMeter("off", gpu=False)
    assert meter.stop(meter.start()) == UNMEASURED
    assert UNMEASURED.joules is None and UNMEASURED.source == UNKNOWN
    with pytest.raises(ValueError, match="expected one of"):
        ComputeMeter("tdp")
    with pytest.raises(ValueError, match="watts_per_core"):
        ComputeMeter(watts_per_core=0)


def test_usage_travels_in_act_response() -> None:
    reply = pb.ActResponse(session_id="s", step=3)
    assert usage_from_proto(reply) == UNMEASURED  # a 1.0 server: no compute field
    usage_to_proto(ComputeUsage(0.002, 0.024, CPU_ESTIMATE), reply.compute)
    back = usage_from_proto(pb.ActResponse.FromString(reply.SerializeToString()))
    assert back == ComputeUsage(0.002, 0.024, CPU_ESTIMATE)
    usage_to_proto(ComputeUsage(0.002, None, UNKNOWN), reply.compute)
    assert usage_from_proto(reply).joules is None
    reply.compute.joules = -1.0  # a broken server's figure is no measurement
    reply.compute.source = RAPL
    assert usage_from_proto(reply) == ComputeUsage(0.002, None, UNKNOWN)


def test_batch_share_splits_evenly() -> None:
    assert ComputeUsage(0.8, 4.0, RAPL).share(4) == ComputeUsage(0.2, 1.0, RAPL)
    assert ComputeUsage(0.8, None, UNKNOWN).share(2).joules is None


def test_nvml_is_added_only_where_it_answers(tmp_path: Path) -> None:
    """Without pynvml (or a GPU) the meter says so by its label; no GPU figure is made up."""
    import importlib.util

    from protos.compute import NvmlCounter

    counter = NvmlCounter()
    if importlib.util.find_spec("pynvml") is None:
        assert not counter.readable
    meter = ComputeMeter(powercap=tmp_path)
    assert meter.source.endswith("+nvml") == counter.readable
    assert ComputeMeter(powercap=tmp_path, gpu=False).source == CPU_ESTIMATE
