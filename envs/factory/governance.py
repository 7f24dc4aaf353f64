"""The ``governance:`` section of site.yaml: what may leave the site, per artifact class.

The section is data only; the testbed's egress gate (`testbed.governance`) applies it. The
defaults follow the data-governance table of the design (docs/governance.md gives the reasons
and sources): factory data, episode records and model weights stay, images and video leave
only redacted with a recorded legal basis, aggregate metrics leave. A site may change any of
them. This is engineering support, not legal advice.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from envs.factory._model import Frozen

ArtifactClass = Literal[
    "raw_factory_data",
    "episode_records",
    "images_video",
    "aggregate_metrics",
    "model_weights",
    "logs",
]
"""The classes every artifact the testbed writes belongs to (docs/governance.md)."""

ARTIFACT_CLASSES: tuple[str, ...] = get_args(ArtifactClass)

EgressRule = Literal["leaves", "stays", "redacted_with_basis"]
"""``leaves``: may leave (logged); ``stays``: leaves only with a clearance the site wrote;
``redacted_with_basis``: leaves when the requester says it is redacted and records a legal
basis, or with a clearance."""


class EgressRules(Frozen):
    """One egress rule per artifact class; the defaults are the design's."""

    raw_factory_data: EgressRule = "stays"
    episode_records: EgressRule = "stays"
    images_video: EgressRule = "redacted_with_basis"
    aggregate_metrics: EgressRule = "leaves"
    model_weights: EgressRule = "stays"
    logs: EgressRule = "stays"

    def rule(self, artifact_class: str) -> EgressRule:
        """The rule of one class (``KeyError`` for a class that is not one of these)."""
        if artifact_class not in ARTIFACT_CLASSES:
            raise KeyError(artifact_class)
        value: EgressRule = getattr(self, artifact_class)
        return value


class GovernanceSpec(Frozen):
    """The site's data-governance section: egress rules and whom to ask for a clearance."""

    egress: EgressRules = EgressRules()
    jurisdiction: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    """Whose data law applies (``KR``, ``JP``, ``EU``...); default: ``safety.jurisdiction``."""
    contact: str = Field(default="", max_length=200)
    """Who clears an artifact at this site (named in every refusal), e.g. an e-mail address."""
