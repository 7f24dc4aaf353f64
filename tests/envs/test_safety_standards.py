"""ISO/TS 15066 and ISO 13855 formulas against hand-computed values; jurisdiction profiles."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest

from envs.errors import FactoryDataError
from envs.safety.profiles import (
    PROFILE_DIR,
    ProfileError,
    Tightening,
    effective_profile,
    jurisdiction_codes,
    load_profile,
    read_profile,
)
from envs.safety.standards import (
    REGIONS,
    SeparationParams,
    max_relative_speed,
    protective_separation,
    reduced_mass,
    robot_effective_mass,
)
from envs.sites import SITE_DATA, load_site


def test_protective_separation_matches_the_worked_example() -> None:
    # DESIGN.md: v_h 1.6, T_r 0.1, T_s 0.25, v_r 0.5, S_s 0.08, C 0.2, Z_d 0.05, Z_r 0.002
    # 1.6 * 0.35 + 0.5 * 0.1 + 0.08 + 0.2 + 0.05 + 0.002 = 0.56 + 0.05 + 0.332 = 0.942
    assert protective_separation(0.5, SeparationParams()) == pytest.approx(0.942)
    # A faster robot needs more distance: + v_r T_r
    assert protective_separation(1.5, SeparationParams()) == pytest.approx(0.942 + 0.1)
    with pytest.raises(ValueError, match="robot speed >= 0"):
        protective_separation(-1.0, SeparationParams())


def test_max_relative_speed_for_a_hand_by_hand() -> None:
    # Hands: F 140 N (transient 280 N), k 75 N/mm, m_H 0.6 kg; robot 20 kg + 1 kg payload.
    m_r = 20 / 2 + 1  # 11 kg
    mu = 1 / (1 / 0.6 + 1 / 11)  # 0.5690 kg
    assert robot_effective_mass(20, 1) == m_r and reduced_mass(0.6, 11) == pytest.approx(mu)
    quasi = 140 / math.sqrt(mu * 75_000)  # 0.678 m/s
    assert max_relative_speed("hands_fingers", 20, 1, transient=False) == pytest.approx(quasi)
    assert max_relative_speed("hands_fingers", 20, 1) == pytest.approx(2 * quasi)
    assert quasi == pytest.approx(0.678, abs=1e-3)


def test_the_face_and_skull_allow_no_transient_contact() -> None:
    for region in ("face", "skull_forehead"):
        limit = REGIONS[region]
        assert limit.force_limit(transient=True) == limit.force_limit(transient=False)
    assert REGIONS["chest"].force_limit(transient=True) == 280.0
    assert len(REGIONS) == 12


def test_the_four_shipped_profiles_load_and_differ_where_the_law_does() -> None:
    assert jurisdiction_codes() == ["EU", "JP", "KR", "US"]
    kr, jp, us, eu = (load_profile(c) for c in ("KR", "JP", "US", "EU"))
    assert kr.requirements.fence_min_height_m == 1.8
    assert jp.requirements.low_power_exempt_motor_w == 80
    assert not jp.requirements.fence_or_sensing_required
    assert eu.requirements.safety_log_retention_years == 5
    assert us.on_violation == "record" and kr.on_violation == "protective_stop"
    for profile in (kr, jp, us, eu):
        assert profile.reduced_speed_mps == 0.25 and profile.standards


def test_an_unknown_code_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="jurisdiction: expected one of EU, JP, KR, US .*'XX'"):
        load_profile("XX")


def test_a_profile_file_with_a_bad_value_names_file_key_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "kr.yaml"
    bad.write_text(
        (PROFILE_DIR / "kr.yaml")
        .read_text()
        .replace("reduced_speed_mps: 0.25", "reduced_speed_mps: -1")
    )
    with pytest.raises(ProfileError, match=r"kr.yaml: reduced_speed_mps: expected .*got -1"):
        read_profile(bad)


def test_a_site_may_tighten_and_never_loosen() -> None:
    kr = load_profile("KR")
    tight = effective_profile(
        kr, Tightening(reduced_speed_mps=0.2, separation={"intrusion_m": 0.3})
    )
    assert tight.reduced_speed_mps == 0.2 and tight.separation.intrusion_m == 0.3
    loosen = [
        (Tightening(reduced_speed_mps=0.3), "safety.tighten.reduced_speed_mps: expected <= 0.25"),
        (Tightening(pfl_scale=1.0, separation={"reaction_time_s": 0.05}),
         "safety.tighten.separation.reaction_time_s: expected >= 0.1"),
        (Tightening(on_violation="record"),
         "safety.tighten.on_violation: expected protective_stop (KR's value"),
        (Tightening(separation={"walking": 2.0}), "separation.walking: expected one of"),
    ]  # fmt: skip
    for tighten, message in loosen:
        with pytest.raises(ProfileError, match=re.escape(message)):
            effective_profile(kr, tighten)


def test_site_yaml_names_its_jurisdiction_and_a_loosening_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    shutil.copytree(SITE_DATA / "kr-changwon", folder)
    site_yaml = folder / "site.yaml"
    text = site_yaml.read_text().replace("  jurisdiction: KR\n", "")  # the shipped one
    anchor = "  keep_out_zones: []\n"
    site_yaml.write_text(text.replace(anchor, anchor + "  jurisdiction: KR\n"))
    profile = load_site(folder).site.safety.profile()
    assert profile is not None and profile.code == "KR"
    site_yaml.write_text(
        text.replace(anchor, anchor + "  jurisdiction: KR\n  tighten: {reduced_speed_mps: 0.5}\n")
    )
    loosened = r"safety.tighten \(line \d+\): expected reduced_speed_mps <= 0.25 \(KR's"
    with pytest.raises(FactoryDataError, match=loosened):
        load_site(folder)
    site_yaml.write_text(text.replace(anchor, anchor + "  jurisdiction: KO\n"))
    with pytest.raises(FactoryDataError, match=r"safety.jurisdiction .*one of EU, JP.*'KO'"):
        load_site(folder)
