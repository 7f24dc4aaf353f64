"""Gating model weights: a model trained on a site's data leaves only by that site's rules.

``model_weights`` stays unless cleared by default. The sites a model was trained on are read
from the metadata beside it (``model.json``: ``train_sites``, else ``home_site``; written by
``testbed train``). A model without them cannot be tagged, so it is refused for any recipient:
nobody can say whose rules apply.
"""

from __future__ import annotations

import json
from pathlib import Path

from testbed.errors import UsageError
from testbed.governance.classes import Artifact, Tags
from testbed.governance.gate import Decision, Destination, EgressGate, governance_root
from testbed.governance.records import EgressRequest, site_governance


def train_sites(model: Path) -> list[str]:
    """The sites whose data trained ``model`` (from the ``.json`` beside it).

    Raises:
        UsageError: If there is no readable metadata naming them.
    """
    meta = Path(model).with_suffix(".json")
    try:
        data = json.loads(meta.read_text("utf-8"))
        sites = data.get("train_sites") or [data["home_site"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(
            f"model {str(model)!r}: no {meta.name} naming its train_sites; the egress gate "
            "cannot tell whose rules apply to its weights",
            "train it with testbed train (it writes the metadata), or serve it without --to",
        ) from None
    return [str(site) for site in sites]


def gate_model(model: Path, request: EgressRequest) -> list[Decision]:
    """Ask each train site's gate whether the weights may go to ``request.recipient``.

    The governance root is ``$TESTBED_GOVERNANCE_DIR``, else ``.governance`` beside the model.

    Raises:
        EgressRefused: If a train site's rules refuse it.
        UsageError: If the model's train sites are unknown.
    """
    model = Path(model)
    sites = train_sites(model)
    rules, tags = {}, {}
    for site in sites:
        tags[site], rules[site] = site_governance(site)
    gate = EgressGate(governance_root(model.parent), rules)
    name = f"{model.parent.name}/{model.name}"
    decisions = []
    for site in sites:
        artifact = Artifact(name, Tags(site, tags[site], "model_weights"))
        to = Destination(request.recipient or site, None)
        decisions.append(gate.require(artifact, to, request.requester, request.basis))
    return decisions
