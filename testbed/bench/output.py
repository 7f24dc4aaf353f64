"""The benchmark report: the machine it ran on, a rich table of every figure, and the JSON file.

The JSON (``testbed bench --json FILE``) holds the machine (CPU model, cores, RAM, OS, Python,
package versions, load average), the profile, and every figure with its details; the table
shows one row per figure with its reference, ratio and goal.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from testbed.bench.figures import SECTIONS, Figure

REPORT_FORMAT = "testbed.bench/1"
PACKAGES = ("physical-ai-testbed", "pybullet", "gymnasium", "numpy", "grpcio", "protobuf",
            "hydra-core", "joblib", "imageio-ffmpeg", "panda-gym")  # fmt: skip


@dataclass
class SectionResult:
    """What one section measured (or why it failed).

    Attributes:
        section: One of `SECTIONS`.
        figures: The figures measured.
        notes: Remarks (a skipped peer, say).
        seconds: Wall time the section took.
        error: Why the section failed, if it did.
    """

    section: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


@dataclass
class BenchReport:
    """One ``testbed bench`` run."""

    profile: str
    started: str
    machine: dict[str, Any]
    sections: list[SectionResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def failed(self) -> list[SectionResult]:
        """Sections that raised an error."""
        return [s for s in self.sections if s.error]

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values."""
        return {
            "format": REPORT_FORMAT,
            "profile": self.profile,
            "started": self.started,
            "duration_s": self.duration_s,
            "machine": self.machine,
            "sections": {
                s.section: {
                    "figures": [f.to_json() for f in s.figures],
                    "notes": s.notes,
                    "seconds": s.seconds,
                    "error": s.error,
                }
                for s in self.sections
            },
        }

    def write_json(self, path: Path) -> None:
        """Write `to_json` to ``path`` (NaN and infinity as null)."""
        text = json.dumps(_finite(self.to_json()), indent=2)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def now_utc() -> str:
    """The current time, ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python, package versions and load average of this machine."""
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(affinity(0)) if affinity else os.cpu_count(),
        "ram_gb": round(_ram_bytes() / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def format_value(value: float | None, unit: str) -> str:
    """A figure's value with its unit, at a precision that suits the unit."""
    if value is None or value != value:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.2f} us" if value < 0.01 else f"{value:.3f} ms"
    if unit == "steps/s":
        return f"{value:,.0f} steps/s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.2f} {unit}"


def table(report: BenchReport) -> Table:
    """Every figure of ``report`` as one rich table, section by section."""
    machine = report.machine
    title = (
        f"testbed bench ({report.profile}), {report.started}, {machine['cpu']}, "
        f"{machine['usable_cores']} cores"
    )
    result = Table(title=title, title_justify="left")
    for column in ("section", "measured", "value", "reference", "ratio", "goal", "met"):
        result.add_column(column, justify="left" if column in ("section", "measured") else "right")
    order = {name: index for index, name in enumerate(SECTIONS)}
    for section in sorted(report.sections, key=lambda s: order.get(s.section, 99)):
        for figure in section.figures:
            result.add_row(*_row(figure))
        if section.error:
            result.add_row(section.section, f"[red]failed: {section.error.splitlines()[0]}")
    return result


def _row(figure: Figure) -> list[str]:
    reference = ""
    if figure.reference is not None:
        reference = f"{figure.reference_name} {format_value(figure.reference, figure.unit)}"
    ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else ""
    met = {True: "[green]yes", False: "[red]no", None: ""}[figure.met]
    value = format_value(figure.value, figure.unit)
    return [figure.section, figure.name, value, reference, ratio, figure.goal, met]


def markdown(report: BenchReport) -> str:
    """The table as Markdown (for the README and docs/benchmarks.md)."""
    machine = report.machine
    lines = [
        f"Measured {report.started} ({report.profile} run, {report.duration_s:.0f} s) on "
        f"{machine['cpu']}, {machine['usable_cores']} cores, {machine['ram_gb']} GB RAM, "
        f"{machine['os']}, Python {machine['python']}.",
        "",
        "| section | measured | value | reference | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for section in report.sections:
        for figure in section.figures:
            cells = [c.replace("[green]", "").replace("[red]", "") for c in _row(figure)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
