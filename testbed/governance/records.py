"""Gating episode records and what is made of them (datasets, videos, report assets).

Export paths call `gate_records` before they write anything outside the site's store; the
store of a record is its campaign folder (``<store>/<trial>/episodes/ep-*.npz``). Each record's
tags come from its meta (site) and its bundle (jurisdiction, rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from envs.errors import EnvsError
from envs.factory.governance import ArtifactClass, GovernanceSpec
from testbed.episodes.records import EpisodeMeta
from testbed.governance.classes import UNSPECIFIED, Artifact, Tags
from testbed.governance.gate import (
    Decision,
    Destination,
    EgressGate,
    current_user,
    governance_root,
)


@dataclass(frozen=True)
class EgressRequest:
    """Who asks to take records out, for whom, and on what basis.

    Attributes:
        recipient: Who receives them; None for each record's own site (its operators).
        requester: Who asks (the login name by default).
        basis: The legal basis or purpose recorded with the decision.
        redacted: Whether the requester states persons in images are redacted.
    """

    recipient: str | None = None
    requester: str = field(default_factory=current_user)
    basis: str = ""
    redacted: bool = False


def store_of(record: Path) -> Path:
    """The store (campaign folder) of a record: ``<store>/<trial>/episodes/ep-*.npz``."""
    record = Path(record).resolve()
    if record.parent.name == "episodes":
        return record.parents[2]
    return record.parent


def site_governance(site_ref: str) -> tuple[str, GovernanceSpec]:
    """A site's jurisdiction tag and rules, from its bundle; the defaults if it cannot load.

    Args:
        site_ref: The site id or bundle folder the record's env was built from.
    """
    from envs.sites import load_site

    try:
        spec = load_site(site_ref)
    except (EnvsError, OSError):
        return UNSPECIFIED, GovernanceSpec()
    governance = spec.site.governance
    return governance.jurisdiction or spec.site.safety.jurisdiction or UNSPECIFIED, governance


def record_artifact(
    store: Path, record: Path, meta: EpisodeMeta, artifact_class: ArtifactClass, redacted: bool
) -> tuple[Artifact, GovernanceSpec]:
    """The artifact a record (or what is made of it) is, named by its path in the store."""
    jurisdiction, rules = site_governance(str(meta.env_kwargs.get("site", meta.site)))
    try:
        name = Path(record).resolve().relative_to(Path(store).resolve()).as_posix()
    except ValueError:
        name = Path(record).name
    tags = Tags(meta.site, jurisdiction, artifact_class)
    return Artifact(name, tags, redacted), rules


def gate_records(
    store: Path,
    records: Iterable[tuple[Path, EpisodeMeta]],
    artifact_class: ArtifactClass,
    destination: Path | None,
    request: EgressRequest,
) -> list[Decision]:
    """Ask the gate for every record; raise the first refusal after logging them all.

    Raises:
        EgressRefused: If any record may not go (nothing has been written yet).
    """
    pairs = [
        record_artifact(store, path, meta, artifact_class, request.redacted)
        for path, meta in records
    ]
    rules = {artifact.tags.site: spec for artifact, spec in pairs}
    gate = EgressGate(governance_root(store), rules)
    decisions = []
    for artifact, _ in pairs:
        to = Destination(request.recipient or artifact.tags.site, destination)
        decisions.append(gate.check(artifact, to, request.requester, request.basis))
    refused = [decision for decision in decisions if not decision.allowed]
    if refused:
        error = refused[0].refusal()
        if len(refused) > 1:
            error.hints = (f"{len(refused)} of {len(decisions)} refused", *error.hints)
        raise error
    return decisions
