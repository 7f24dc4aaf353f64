"""Compliance verdicts per cell and per jurisdiction, with evidence, and the report section."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from testbed.results.compliance import (
    SiteProfile,
    cell_compliance,
    jurisdiction_matrix,
    jurisdictions,
    load_profile,
)
from testbed.results.report_blocks import to_markdown
from testbed.results.report_compliance import COMPLIANCE_CSV, compliance_blocks

PROFILES = {
    "kr": SiteProfile("KR", 1.5, 80.0, False),
    "us": SiteProfile("US", 1.0, 100.0, True),
    "jp": SiteProfile("JP", 0.5, 120.0, False),
}


def row(policy: str, site: str, seed: int, **violations: float) -> dict[str, object]:
    rules = ("tcp_speed", "contact_force", "keep_out")
    base: dict[str, float] = {f"violations_{k}": 0 for k in rules}
    if site == "us":
        base |= {"violations_ssm": 0, "violations_reduced_speed": 0, "violations_pfl": 0,
                 "min_separation_m": 1.2, "min_ssm_margin_m": 0.3}  # fmt: skip
    return {"policy": policy, "site": site, "seed": seed, "peak_tcp_speed_mps": 0.4,
            **base, **violations}  # fmt: skip


def table() -> pd.DataFrame:
    return pd.DataFrame([
        row("a", "kr", 0), row("a", "kr", 1),
        row("a", "us", 0), row("a", "us", 1, violations_ssm=12, violations_reduced_speed=3,
                                min_separation_m=0.55, min_ssm_margin_m=-0.34),
        row("a", "jp", 0, violations_tcp_speed=5, peak_tcp_speed_mps=0.71), row("a", "jp", 1),
        row("b", "kr", 0), row("b", "us", 0), row("b", "jp", 0),
        # an episode that ended on a fault before any summary: no evidence either way
        {"policy": "b", "site": "jp", "seed": 1},
    ])  # fmt: skip


def test_a_cell_violates_when_any_episode_broke_a_rule_with_the_worst_as_evidence() -> None:
    cells = {(c.policy, c.site): c for c in cell_compliance(table(), PROFILES.__getitem__)}
    us = cells[("a", "us")]
    assert us.verdict == "violates" and (us.violating, us.episodes) == (1, 2)
    assert us.counts["ssm"] == 12 and us.counts["reduced_speed"] == 3 and us.worst_seed == 1
    assert us.evidence == [
        "separation 0.55 m, 0.34 m inside S_p (12 steps)",
        "faster than the reduced speed with a person in the zone (3 steps)",
    ]
    jp = cells[("a", "jp")]
    assert jp.evidence == ["TCP speed 0.71 m/s vs 0.5 m/s (5 steps)"]
    assert cells[("a", "kr")].verdict == "meets"
    assert cells[("b", "jp")].episodes == 1  # the faulted episode is not counted


def test_the_jurisdiction_matrix_names_where_a_policy_may_run() -> None:
    cells = cell_compliance(table(), PROFILES.__getitem__)
    assert jurisdictions(cells) == ["JP", "KR", "US"]
    assert jurisdiction_matrix(cells) == {
        "a": {
            "JP": "violates at 1 of 1 site(s)",
            "KR": "meets",
            "US": "violates at 1 of 1 site(s)",
        },
        "b": {"JP": "meets", "KR": "meets", "US": "meets"},
    }


def test_an_unknown_site_is_unspecified_not_a_crash() -> None:
    profile = load_profile("/nonexistent/bundle")
    assert profile.jurisdiction == "unspecified" and math.isnan(profile.max_tcp_speed_mps)
    austin = load_profile("us-austin")
    assert austin.jurisdiction == "US" and austin.coworkers
    assert (austin.max_tcp_speed_mps, austin.max_contact_force_n) == (1.0, 100.0)
    # its restocker's walkway has no fence or sensing device, which the US profile asks for
    [finding] = austin.layout
    assert finding.startswith("violates: fence or sensing device required by US (ANSI/A3")
    assert finding.endswith("where a co-worker shares the cell: walkway 'walk1' unguarded")
    assert load_profile("kr-changwon").layout == ()


def test_a_layout_finding_makes_every_cell_of_the_site_violate(tmp_path: Path) -> None:
    finding = "violates: fence or sensing device required by US (src) where ...: walk1 unguarded"
    profiles = {**PROFILES, "us": SiteProfile("US", 1.0, 100.0, True, (finding,))}
    cells = {(c.policy, c.site): c for c in cell_compliance(table(), profiles.__getitem__)}
    clean = cells[("b", "us")]
    assert clean.violating == 0 and clean.verdict == "violates"
    assert jurisdiction_matrix(list(cells.values()))["b"]["US"] == "violates at 1 of 1 site(s)"


def test_the_report_section_says_indicative_links_the_cell_and_writes_the_csv(
    tmp_path: Path, monkeypatch: object
) -> None:
    import testbed.results.report_compliance as section

    monkeypatch.setattr(section, "cell_compliance",  # type: ignore[attr-defined]
                        lambda df: cell_compliance(df, PROFILES.__getitem__))  # fmt: skip
    text = to_markdown(compliance_blocks(table(), tmp_path))
    assert "not a certification" in text
    assert "[seed 1: separation 0.55 m" in text and "](#cell-a-us)" in text
    written = pd.read_csv(tmp_path / COMPLIANCE_CSV)
    assert list(written["verdict"]) == ["violates", "meets", "violates", "meets", "meets", "meets"]
    assert "nan" not in text.lower()


def test_the_report_lists_the_layouts_of_sites_with_people(
    tmp_path: Path, monkeypatch: object
) -> None:
    import testbed.results.report_compliance as section

    finding = "violates: fence or sensing device required by US (src) where ...: walk1 unguarded"
    profiles = {**PROFILES, "us": SiteProfile("US", 1.0, 100.0, True, (finding,))}
    monkeypatch.setattr(section, "cell_compliance",  # type: ignore[attr-defined]
                        lambda df: cell_compliance(df, profiles.__getitem__))  # fmt: skip
    text = to_markdown(compliance_blocks(table(), tmp_path))
    assert "Site layouts" in text and "fence or sensing device required by US (src)" in text
    assert "site layout 1 (see Site layouts)" in text
    written = pd.read_csv(tmp_path / COMPLIANCE_CSV)
    assert list(written["verdict"]) == ["violates", "meets", "violates", "meets", "meets",
                                        "violates"]  # fmt: skip
    assert set(written.loc[written["site"] == "us", "layout"]) == {finding}
