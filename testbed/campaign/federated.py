"""Federated campaigns: each site's trials run only on its own workers, into its own store.

A campaign spanning sites is planned as usual (`testbed.campaign.plan`), then each trial goes
to its target site: with Ray, as a task that needs the custom resource ``site:<id>`` (one only
that site's Ray node advertises: ``ray start ... --resources '{"site:kr-changwon": 1}'``);
without Ray, in this process. Either way its folder is ``<store of its site>/<trial>/``, so
its records never land in another site's store.

The coordinator never reads records: `coordinator_matrix` asks each site's egress gate for the
site's aggregate metrics (the transfer-matrix rows of the cells at that site, computed at the
site) and joins what the sites let out. Cell-local numbers (success with its Wilson interval,
episode counts, KPIs) equal those of a matrix built from all records; the cross-site ones
(retention, the normalised score) need the home cell's episodes and stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from envs.factory.governance import GovernanceSpec
from testbed.campaign.plan import PlannedTrial, plan_campaign
from testbed.campaign.trial import TrialOutcome, run_trial
from testbed.episodes.records import RECORD_GLOB, RecordError, read_meta
from testbed.governance.classes import Artifact, Tags
from testbed.governance.gate import (
    Decision,
    Destination,
    EgressGate,
    current_user,
    governance_root,
)
from testbed.governance.records import site_governance

#: Prefixes of the transfer-matrix columns that need another site's episodes (empty at a site).
CROSS_SITE = ("retention", "normalised")


def site_resource(site: str) -> str:
    """The Ray custom resource a site's node advertises and its trials require."""
    return f"site:{site}"


@dataclass(frozen=True)
class SiteTrial:
    """One trial of a federated campaign, as it ran.

    Attributes:
        outcome: What `run_trial` returned.
        site: The site it ran at.
        folder: Its folder, inside that site's store.
        node: The Ray node id it ran on ("" without Ray).
    """

    outcome: TrialOutcome
    site: str
    folder: Path
    node: str


def plan_federated(
    arguments: list[str], stores: Mapping[str, Path]
) -> list[tuple[PlannedTrial, Path]]:
    """Every trial of ``testbed run -m <arguments>`` with its folder in its site's store.

    Raises:
        ValueError: If a trial's site has no store (naming the site and the stores given).
    """
    planned = []
    for trial in plan_campaign(arguments, multirun=True):
        site = trial.config.site.id
        if site not in stores:
            known = ", ".join(sorted(stores)) or "none"
            raise ValueError(f"trial {trial.name}: site {site!r} has no store; stores: {known}")
        planned.append((trial, Path(stores[site]) / trial.folder.name))  # the same name as run
    return planned


def run_federated(
    arguments: list[str], stores: Mapping[str, Path], *, ray: bool = False
) -> list[SiteTrial]:
    """Run every trial at its site: as Ray tasks needing ``site:<id>``, or here in turn.

    With ``ray=True`` the caller has connected (``ray.init(address=...)``); a trial waits until
    a node with its site's resource is there.
    """
    planned = plan_federated(arguments, stores)
    if not ray:
        return [_run_here(trial.config, folder) for trial, folder in planned]
    import ray as ray_module

    task = ray_module.remote(_run_on_node)
    futures = [
        task.options(num_cpus=1, resources={site_resource(trial.config.site.id): 1}).remote(
            trial.config, folder
        )
        for trial, folder in planned
    ]
    return list(ray_module.get(futures))


def _run_here(config: Any, folder: Path) -> SiteTrial:
    return SiteTrial(run_trial(config, folder), config.site.id, folder, "")


def _run_on_node(config: Any, folder: Path) -> SiteTrial:
    import ray

    outcome = run_trial(config, folder)
    return SiteTrial(outcome, config.site.id, folder, ray.get_runtime_context().get_node_id())


def site_aggregates(
    store: Path, site: str, recipient: str = "coordinator", requester: str | None = None
) -> pd.DataFrame | None:
    """What ``site`` lets out of its store for ``recipient``: its cells' matrix rows, or None.

    Runs at the site: it reads the site's own records, computes the rows there, and asks the
    site's gate (class ``aggregate_metrics``, artifact ``matrix``), which logs the decision.
    """
    return site_release(store, site, recipient, requester)[0]


def site_release(
    store: Path, site: str, recipient: str = "coordinator", requester: str | None = None
) -> tuple[pd.DataFrame | None, Decision]:
    """`site_aggregates` with the gate's decision (its rule and reason, for the report)."""
    from testbed.results.episode_table import load_episodes
    from testbed.results.evaluator import transfer_matrix

    jurisdiction, rules = site_rules(store, site)
    gate = EgressGate(governance_root(store), {site: rules})
    artifact = Artifact("matrix", Tags(site, jurisdiction, "aggregate_metrics"))
    decision = gate.check(artifact, Destination(recipient), requester or current_user())
    if not decision.allowed:
        return None, decision
    rows = transfer_matrix(load_episodes(Path(store))).to_frame()
    rows = rows[rows["site"] == site].copy()
    for column in rows.columns:
        if str(column).startswith(CROSS_SITE):
            rows[column] = float("nan")
    return rows, decision


def site_rules(store: Path, site: str) -> tuple[str, GovernanceSpec]:
    """The site's jurisdiction and egress rules, from the bundle its records were made with.

    Runs at the site: a store's records name their bundle (a packaged site id, or the folder
    of ``site.path``), so a site whose own bundle changes the defaults is judged by them.
    """
    for path in sorted(Path(store).glob(f"*/{RECORD_GLOB}")):
        try:
            meta = read_meta(path)
        except RecordError:
            continue  # a damaged record: the next one names the bundle as well
        if meta.site == site:
            return site_governance(str(meta.env_kwargs.get("site", site)))
    return site_governance(site)


def coordinator_matrix(
    stores: Mapping[str, Path], recipient: str = "coordinator"
) -> tuple[pd.DataFrame, list[str]]:
    """The coordinator's transfer-matrix rows from what the sites let out, and who let nothing.

    Returns:
        The rows (sorted by policy and site), and the sites whose rules kept their aggregates.
    """
    matrix, refused = coordinator_release(stores, recipient)
    return matrix, [decision.artifact.tags.site for decision in refused]


def coordinator_release(
    stores: Mapping[str, Path], recipient: str = "coordinator", requester: str | None = None
) -> tuple[pd.DataFrame, list[Decision]]:
    """`coordinator_matrix` with the refusals themselves (rule, reason, contact)."""
    frames, refused = [], []
    for site, store in sorted(stores.items()):
        rows, decision = site_release(Path(store), site, recipient, requester)
        if rows is None:
            refused.append(decision)
        else:
            frames.append(rows)
    matrix = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not matrix.empty:
        matrix = matrix.sort_values(["policy", "site"], ignore_index=True)
    return matrix, refused
