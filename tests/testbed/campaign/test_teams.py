"""Several model teams in one campaign, each reaching its own server with its own identity
(team A: a client certificate for mutual TLS, its CN naming the team; team B: a bearer token):
every record, trial.json, matrix row and leaderboard entry names the team, policy id and
version, the report attributes them, and one team's token is refused by another's server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from policies.scripted import ScriptedSortController
from policies.server import PolicyServer, TlsConfig, serve
from testbed.campaign.stores import trial_folder
from testbed.campaign.teams import certificate_name, policy_team
from testbed.campaign.trial import run_trial
from testbed.episodes.records import RECORD_GLOB, read_meta
from testbed.results.report import write_report
from tests.certs import Pki, make_pki

from .helpers import FAST, compose

KR = "kr-changwon"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def servers(pki: Pki) -> Iterator[dict[str, PolicyServer]]:
    """Team A's server (mutual TLS, CN team-a) and team B's (bearer token), on 127.0.0.1."""
    tls = TlsConfig(pki.server_cert, pki.server_key, client_ca=pki.ca)
    started = {
        "a": serve(ScriptedSortController(KR), "127.0.0.1:0", tls=tls),
        "b": serve(ScriptedSortController(KR), "127.0.0.1:0", token={"team-b": "tok-b"}),
    }
    try:
        for server in started.values():
            assert server.wait_until_serving(10)
        yield started
    finally:
        for server in started.values():
            server.stop(grace=0)


def _pem_files(pki: Pki, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ca": pki.ca, "cert": pki.client_cert, "key": pki.client_key}
    for name, data in files.items():
        (folder / f"{name}.pem").write_bytes(data)
    return [f"policy.tls.{name}={folder / f'{name}.pem'}" for name in files] + [
        "policy.tls.server_name=localhost"
    ]


def _remote(name: str, server: PolicyServer, campaign: Path, *extra: str) -> list[str]:
    return [*FAST, "policy=remote", f"policy.name={name}", f"policy.home_site={KR}",
            f"policy.address=127.0.0.1:{server.port}", f"site={KR}", "campaign.episodes=1",
            "task.max_steps=30", f"campaign.dir={campaign}", *extra]  # fmt: skip


def test_two_teams_are_attributed_in_records_and_the_report(
    servers: dict[str, PolicyServer], pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = tmp_path / "campaign"
    monkeypatch.setenv("TEAM_B_TOKEN", "tok-b")
    team_a = compose(_remote("sort_a", servers["a"], campaign, *_pem_files(pki, tmp_path / "a")))
    team_b = compose(_remote("sort_b", servers["b"], campaign, "policy.team=team-b",
                             "policy.token_env=TEAM_B_TOKEN"))  # fmt: skip
    assert policy_team(team_a.policy) == "team-a"  # the CN of its client certificate
    for config in (team_a, team_b):
        outcome = run_trial(config, trial_folder(config))
        assert outcome.status == "done", outcome.reason

    for config, team in ((team_a, "team-a"), (team_b, "team-b")):
        folder = trial_folder(config)
        (meta,) = [read_meta(p) for p in folder.glob(RECORD_GLOB)]
        assert (meta.team, meta.policy_id) == (team, "scripted-sort@kr-changwon@1.0.0")
        trial = json.loads((folder / "trial.json").read_text())["policy"]
        assert (trial["team"], trial["id"], trial["version"]) == (
            team, "scripted-sort@kr-changwon", "1.0.0"
        )  # fmt: skip

    write_report(campaign)
    matrix = pd.read_csv(campaign / "transfer_matrix.csv")
    assert dict(zip(matrix["policy"], matrix["team"], strict=True)) == {
        "sort_a": "team-a", "sort_b": "team-b"
    }  # fmt: skip
    assert set(matrix["policy_id"]) == {"scripted-sort@kr-changwon"}
    assert set(matrix["policy_version"].astype(str)) == {"1.0.0"}
    board = pd.read_csv(campaign / "leaderboard.csv")
    assert set(zip(board["policy"], board["team"], strict=True)) == {
        ("sort_a", "team-a"), ("sort_b", "team-b")
    }  # fmt: skip
    report = (campaign / "report.md").read_text()
    assert "## Teams and policies" in report and "2 team(s): team-a, team-b." in report
    assert "| sort_a | team-a | scripted-sort@kr-changwon | 1.0.0 | kr-changwon |" in report
    assert "| sort_b | team-b | scripted-sort@kr-changwon | 1.0.0 | kr-changwon |" in report


def test_one_teams_token_is_refused_by_another_teams_server(
    servers: dict[str, PolicyServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_A_TOKEN", "tok-a")
    config = compose(_remote("sort_a", servers["b"], tmp_path, "policy.team=team-a",
                             "policy.token_env=TEAM_A_TOKEN"))  # fmt: skip
    outcome = run_trial(config, trial_folder(config))
    assert outcome.status == "failed"
    assert "missing or invalid token" in outcome.reason, outcome.reason
    assert (
        f"the server at 127.0.0.1:{servers['b'].port} refused policy 'sort_a' of team team-a, "
        "which presented the bearer token in $TEAM_A_TOKEN (policy.token_env)"
    ) in outcome.reason
    assert "tok-a" not in outcome.reason  # the token itself is never echoed
    assert not list(trial_folder(config).glob(RECORD_GLOB))


def test_a_certificate_without_a_common_name_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "client.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"policy\.tls\.cert: cannot read the team from"):
        certificate_name(bad)
