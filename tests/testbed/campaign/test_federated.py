"""Federated campaigns: each site's trials run on its own Ray node, into its own store, and the
coordinator's matrix (from what the sites let out) equals the one built from all records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from testbed.campaign.federated import (
    CROSS_SITE,
    coordinator_matrix,
    run_federated,
    site_resource,
)
from testbed.governance.gate import GOVERNANCE_DIR_ENV
from testbed.results.episode_table import load_episodes
from testbed.results.evaluator import transfer_matrix

KR, US = "kr-changwon", "us-austin"
SWEEP = ["policy=scripted_kr_inprocess", f"site={KR},{US}", "seed=0", "campaign.episodes=2",
         "task.max_steps=60", "campaign.progress=false", "campaign.name=fed"]  # fmt: skip


def _stores(tmp_path: Path) -> dict[str, Path]:
    return {KR: tmp_path / "store-kr", US: tmp_path / "store-us"}


def _records(store: Path) -> set[str]:
    return {p.parent.parent.name for p in store.glob("*/episodes/ep-*.npz")}


def _check(stores: dict[str, Path], tmp_path: Path) -> None:
    assert _records(stores[KR]) == {f"scripted_kr_inprocess__{KR}__s0"}
    assert _records(stores[US]) == {f"scripted_kr_inprocess__{US}__s0"}
    coordinator, withheld = coordinator_matrix(stores)
    assert withheld == []
    everything = tmp_path / "everything"  # only the test gathers all records in one place
    for store in stores.values():
        for trial in store.iterdir():
            if trial.name != ".governance":
                (everything / trial.name).mkdir(parents=True)
                for path in trial.rglob("*"):
                    if path.is_file():
                        target = everything / trial.name / path.relative_to(trial)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(path.read_bytes())
    full = transfer_matrix(load_episodes(everything)).to_frame()
    full = full.sort_values(["policy", "site"], ignore_index=True)
    local = [c for c in full.columns if not str(c).startswith(CROSS_SITE)]
    pd.testing.assert_frame_equal(coordinator[local], full[local])


@pytest.fixture(autouse=True)
def _no_shared_governance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GOVERNANCE_DIR_ENV, raising=False)


def test_local_federated_campaign_keeps_records_in_their_sites_stores(tmp_path: Path) -> None:
    stores = _stores(tmp_path)
    trials = run_federated(SWEEP, stores)
    assert sorted(t.outcome.status for t in trials) == ["done", "done"]
    _check(stores, tmp_path)


def test_unknown_store_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="site 'us-austin' has no store"):
        run_federated(SWEEP, {KR: tmp_path})


@pytest.mark.slow  # a Ray head and two nodes: 50 s on a loaded 2-core machine
def test_ray_cluster_runs_each_sites_trials_on_its_node(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        nodes = {
            site: cluster.add_node(num_cpus=1, resources={site_resource(site): 1})
            for site in (KR, US)
        }
        ray.init(address=cluster.address)
        cluster.wait_for_nodes(timeout=240)  # slow to register on a busy 2-core machine
        stores = _stores(tmp_path)
        trials = run_federated(SWEEP, stores, ray=True)
        assert {t.site: t.node for t in trials} == {s: n.node_id for s, n in nodes.items()}
        assert sorted(t.outcome.status for t in trials) == ["done", "done"]
        _check(stores, tmp_path)
    finally:
        ray.shutdown()
        cluster.shutdown()
