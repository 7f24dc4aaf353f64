"""Errors raised by the environments package.

`envs` stands alone (it imports nothing from the orchestrator), so it owns its own small
hierarchy. The orchestrator (`testbed`) catches these at its boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class EnvsError(Exception):
    """Base class for every error raised by `envs`."""


@dataclass(frozen=True)
class DataIssue:
    """One problem found in a factory bundle.

    Attributes:
        file: Bundle-relative file name, e.g. ``stations.csv``.
        location: Row (``row 4``) or key path (``robot.gripper.kind``) inside the file.
        value: The offending value as it appeared (``repr``), or ``""`` if missing.
        expected: What would have been accepted.
    """

    file: str
    location: str
    value: str
    expected: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.location else self.file
        got = f" (got {self.value})" if self.value else ""
        return f"{where}: expected {self.expected}{got}"


class FactoryDataError(EnvsError):
    """A factory bundle failed validation; carries every issue found, not just the first."""

    def __init__(self, bundle: str, issues: Sequence[DataIssue]) -> None:
        self.bundle = bundle
        self.issues = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"factory bundle {bundle!r} has {len(self.issues)} error(s):\n{lines}")


class UnknownSiteError(EnvsError):
    """A site name is neither a packaged site nor an existing bundle folder."""


class SimulationError(EnvsError):
    """The physics engine could not build or step the cell as specified."""


class MissingStationError(EnvsError, ValueError):
    """A task needs a kind of station (``conveyor``, ``bin``...) that the site's bundle lacks."""

    def __init__(self, site_id: str, kind: str, task: str) -> None:
        super().__init__(
            f"site {site_id!r} has no {kind} station, which task {task} needs "
            f"(add a row of kind {kind!r} to its stations.csv)"
        )
        self.site_id, self.kind, self.task = site_id, kind, task
