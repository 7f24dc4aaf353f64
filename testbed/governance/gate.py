"""The one egress gate: may this artifact go to this recipient? Every answer is logged.

`EgressGate.check` decides from the artifact's site rules (site.yaml ``governance.egress``):

1. The recipient is the artifact's own site (its operators): allowed; nothing leaves.
2. ``leaves``: allowed.
3. ``redacted_with_basis``: allowed when the artifact is marked redacted and a basis is given.
4. Otherwise a clearance the site wrote (`testbed.governance.clearances`) that covers the
   artifact, its class and the recipient allows it; without one it is refused.

Each decision, allowed or not, is appended to the site's audit log
(``<root>/<site>/audit.jsonl``) with the tags, the recipient, who asked and on what basis.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from envs.factory.governance import GovernanceSpec
from testbed.errors import UsageError
from testbed.governance.audit import AuditLog
from testbed.governance.classes import Artifact
from testbed.governance.clearances import Clearance, clearance_folder, load_clearances

GOVERNANCE_DIR_ENV = "TESTBED_GOVERNANCE_DIR"
"""Environment variable naming the governance root (clearances and audit logs of each site)."""

AUDIT_FILE = "audit.jsonl"


def governance_root(store: Path) -> Path:
    """The governance root: ``$TESTBED_GOVERNANCE_DIR``, else ``<store>/.governance``."""
    configured = os.environ.get(GOVERNANCE_DIR_ENV)
    return Path(configured) if configured else Path(store) / ".governance"


def audit_path(root: Path, site: str) -> Path:
    """The audit log of ``site`` under the governance root ``root``."""
    return Path(root) / site / AUDIT_FILE


def current_user() -> str:
    """The login name, the default requester of a command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Destination:
    """Who receives an artifact, and where it would be written.

    Attributes:
        recipient: A site id (its own site means its operators), a team, ``coordinator``...
        path: The file or folder it would be written to, if any (recorded in the log).
    """

    recipient: str
    path: Path | None = None


@dataclass(frozen=True)
class Decision:
    """One egress decision.

    Attributes:
        allowed: Whether the artifact may go.
        artifact: What was asked for.
        destination: Where to.
        requester: Who asked.
        basis: The legal basis given (or the clearance's), "" if none.
        rule: The rule that decided, e.g. ``governance.egress.images_video = redacted_with_basis``.
        reason: Why, in words.
        clearance: The id of the clearance used, or None.
        contact: The site's data-governance contact ("" if its bundle names none).
        root: The governance root (where clearances go).
    """

    allowed: bool
    artifact: Artifact
    destination: Destination
    requester: str
    basis: str
    rule: str
    reason: str
    clearance: str | None
    contact: str
    root: Path

    def refusal(self) -> EgressRefused:
        """The error for a refused decision: which rule, which artifact, how to clear it."""
        return EgressRefused(self)


class EgressRefused(UsageError):
    """The gate refused an artifact; nothing was written outside the site's store.

    Attributes:
        decision: The refused decision (`Decision`).
    """

    def __init__(self, decision: Decision) -> None:
        tags = decision.artifact.tags
        folder = clearance_folder(decision.root, tags.site)
        ask = f"ask {decision.contact}" if decision.contact else "ask the site's operator"
        super().__init__(
            f"egress refused: {decision.artifact.describe()} to "
            f"{decision.destination.recipient!r}: {decision.rule} ({decision.reason})",
            f"to clear it, {ask} for a clearance file in {folder}/ "
            f"(id, class: {tags.artifact_class}, artifacts, to: "
            f"{decision.destination.recipient}, basis, granted_by; docs/governance.md)",
            "or keep it at the site: leave out --to (the site's own operators)",
        )
        self.decision = decision


class EgressGate:
    """The gate of one governance root, with each site's rules.

    Args:
        root: The governance root (per site: ``clearances/`` and ``audit.jsonl``).
        rules: Site id -> its ``governance:`` section; a site not listed gets the defaults.
        now: Clock for the log and for clearance expiry (tests pass a fixed one).
    """

    def __init__(
        self,
        root: Path,
        rules: Mapping[str, GovernanceSpec] | None = None,
        now: type[datetime] = datetime,
    ) -> None:
        self.root = Path(root)
        self.rules = dict(rules or {})
        self._now = now

    def check(
        self, artifact: Artifact, destination: Destination, requester: str, basis: str = ""
    ) -> Decision:
        """Decide whether ``artifact`` may go to ``destination``, and log the decision."""
        decision = self._decide(artifact, destination, requester, basis.strip())
        AuditLog(audit_path(self.root, artifact.tags.site)).append(_entry(decision, self._time()))
        return decision

    def require(
        self, artifact: Artifact, destination: Destination, requester: str, basis: str = ""
    ) -> Decision:
        """`check`, raising `EgressRefused` when refused."""
        decision = self.check(artifact, destination, requester, basis)
        if not decision.allowed:
            raise decision.refusal()
        return decision

    def _time(self) -> datetime:
        return self._now.now(UTC)

    def _decide(
        self, artifact: Artifact, destination: Destination, requester: str, basis: str
    ) -> Decision:
        tags = artifact.tags
        spec = self.rules.get(tags.site, GovernanceSpec())
        rule = spec.egress.rule(tags.artifact_class)
        named = f"governance.egress.{tags.artifact_class} = {rule}"

        def decision(
            allowed: bool, why: str, rule: str = named, clear: Clearance | None = None
        ) -> Decision:
            given = basis or (clear.basis if clear else "")
            clearance = clear.id if clear else None
            return Decision(allowed, artifact, destination, requester, given, rule, why,
                            clearance, spec.contact, self.root)  # fmt: skip

        if destination.recipient in (tags.site, f"site:{tags.site}"):
            return decision(True, "its own site's operators: nothing leaves", "local")
        if rule == "leaves":
            return decision(True, "this class may leave the site")
        if rule == "redacted_with_basis" and artifact.redacted and basis:
            return decision(True, "redacted, with a recorded legal basis")
        today = self._time().date()
        for clearance in load_clearances(self.root, tags.site):
            if clearance.covers(artifact, destination.recipient, today):
                return decision(True, f"cleared by {clearance.id}", named, clearance)
        if rule == "redacted_with_basis":
            missing = "not marked redacted" if not artifact.redacted else "no legal basis given"
            return decision(False, f"{missing}, and no clearance covers it")
        return decision(False, "it stays at the site unless a clearance covers it")


def _entry(decision: Decision, when: datetime) -> dict[str, object]:
    tags = decision.artifact.tags
    path = decision.destination.path
    return {
        "time": when.isoformat(timespec="seconds"),
        "decision": "allowed" if decision.allowed else "refused",
        "artifact": decision.artifact.name,
        "site": tags.site,
        "jurisdiction": tags.jurisdiction,
        "class": tags.artifact_class,
        "redacted": decision.artifact.redacted,
        "recipient": decision.destination.recipient,
        "path": str(path) if path is not None else None,
        "requester": decision.requester,
        "basis": decision.basis,
        "rule": decision.rule,
        "reason": decision.reason,
        "clearance": decision.clearance,
    }
