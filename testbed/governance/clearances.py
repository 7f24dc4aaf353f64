"""Clearances: a site operator's written permission for artifacts to leave the site.

One YAML file per clearance under ``<governance root>/<site>/clearances/``::

    id: clr-2026-007                      # quoted in the audit log
    class: model_weights                  # the artifact class it clears
    artifacts: ["*/episodes/ep-0000*.npz"] # glob patterns on artifact names [default: all]
    to: coordinator                       # the recipient, or "*" for any
    basis: "approval MOTIE 2026-123"      # the legal basis or approval, recorded with each use
    granted_by: "J. Kim, data protection officer"
    expires: 2026-12-31                   # optional; the day after it no longer clears

The site is the folder's name. A file that is not a valid clearance is an error naming the
file, the key, the value and what was expected, never silently ignored.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envs.factory.governance import ArtifactClass
from testbed.errors import UsageError
from testbed.governance.classes import Artifact

CLEARANCES = "clearances"
"""The folder of a site's clearances inside its governance folder."""


class _ClearanceFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1, max_length=100)
    artifact_class: ArtifactClass = Field(alias="class")
    artifacts: tuple[str, ...] = ("*",)
    to: str = Field(min_length=1)
    basis: str = Field(min_length=1)
    granted_by: str = Field(min_length=1)
    expires: date | None = None


@dataclass(frozen=True)
class Clearance:
    """One clearance file, read.

    Attributes:
        id: Its id, as the audit log quotes it.
        site: The site that granted it (its folder's name).
        artifact_class: The class it clears.
        artifacts: Glob patterns on artifact names.
        to: The recipient it clears for, or ``*``.
        basis: The legal basis or approval.
        granted_by: Who granted it.
        expires: The last day it clears, or None.
        path: The file.
    """

    id: str
    site: str
    artifact_class: str
    artifacts: tuple[str, ...]
    to: str
    basis: str
    granted_by: str
    expires: date | None
    path: Path

    def covers(self, artifact: Artifact, recipient: str, today: date) -> bool:
        """Whether this clearance lets ``artifact`` go to ``recipient`` on ``today``."""
        tags = artifact.tags
        return (
            tags.site == self.site
            and tags.artifact_class == self.artifact_class
            and self.to in ("*", recipient)
            and (self.expires is None or today <= self.expires)
            and any(fnmatch.fnmatchcase(artifact.name, pattern) for pattern in self.artifacts)
        )


def clearance_folder(root: Path, site: str) -> Path:
    """Where ``site``'s operator puts its clearances."""
    return Path(root) / site / CLEARANCES


def load_clearances(root: Path, site: str) -> list[Clearance]:
    """Every clearance of ``site`` under the governance root ``root`` (sorted by file name).

    Raises:
        UsageError: If a file is not valid YAML or not a valid clearance (file, key, value,
            expectation in the message).
    """
    folder = clearance_folder(root, site)
    if not folder.is_dir():
        return []
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return [_read(path, site) for path in files]


def _read(path: Path, site: str) -> Clearance:
    try:
        data: Any = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: not a readable YAML clearance: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with id, class, to, basis, granted_by")
    try:
        model = _ClearanceFile.model_validate(data)
    except ValidationError as exc:
        raise UsageError(_describe(path, data, exc), "docs/governance.md: clearances") from None
    return Clearance(
        id=model.id,
        site=site,
        artifact_class=model.artifact_class,
        artifacts=model.artifacts,
        to=model.to,
        basis=model.basis,
        granted_by=model.granted_by,
        expires=model.expires,
        path=path,
    )


def _describe(path: Path, data: dict, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(file)"
        if error["type"] == "missing":
            lines.append(f"{path}: key {key}: missing; expected a value (required)")
            continue
        value = error.get("input", data.get(key))
        lines.append(f"{path}: key {key}: {value!r}; expected {_expected(error)}")
    return "\n".join(lines)


def _expected(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "one of id, class, artifacts, to, basis, granted_by, expires"
    return str(error["msg"]).removeprefix("Input should be ").removeprefix("Value error, ")
