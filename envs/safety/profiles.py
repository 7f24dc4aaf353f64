"""Jurisdiction profiles: which standards a country's cells follow, and the values they use.

A profile is data (``jurisdictions/<code>.yaml``); a site names one in site.yaml
(``safety.jurisdiction: KR``) and may tighten any value (``safety.tighten``), never loosen it.
`effective_profile` applies the tightening and says which key loosened what, if one does.
Values, sources and the national differences are in docs/safety.md. Indicative simulation
checks, not a certification and not legal advice.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError

from envs.factory._model import Frozen
from envs.safety.standards import REDUCED_SPEED_MPS, SeparationParams

PROFILE_DIR = Path(__file__).with_name("jurisdictions")
Speed = Annotated[float, Field(gt=0, le=10.0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=10.0, allow_inf_nan=False)]
Metres = Annotated[float, Field(ge=0, le=10.0, allow_inf_nan=False)]
OnViolation = Literal["record", "protective_stop"]
"""What a violation does: counted only, or a protective stop that costs cycle time."""
_STRICTNESS: dict[str, int] = {"record": 0, "protective_stop": 1}


class Standard(Frozen):
    """A standard or regulation a profile follows."""

    id: str
    title: str
    note: str = ""


class Separation(Frozen):
    """Speed-and-separation monitoring terms (`envs.safety.standards.SeparationParams`)."""

    human_speed_mps: Speed = 1.6
    reaction_time_s: Seconds = 0.1
    stopping_time_s: Seconds = 0.25
    stopping_distance_m: Metres = 0.08
    intrusion_m: Metres = 0.2
    sensor_uncertainty_m: Metres = 0.05
    robot_uncertainty_m: Metres = 0.002

    def params(self) -> SeparationParams:
        """The terms as the formula takes them."""
        return SeparationParams(**self.model_dump())


class Requirements(Frozen):
    """National requirements a simulation can represent (checked against the cell's layout)."""

    fence_or_sensing_required: bool = True
    """Fence-less operation only with sensing protective devices (or collaborative limits)."""
    fence_min_height_m: Metres | None = None
    fence_or_sensing_source: str = ""
    """The law or standard (and clause) the fence-or-sensing requirement comes from."""
    low_power_exempt_motor_w: Annotated[float, Field(gt=0, le=10_000)] | None = None
    """Robots whose every drive motor is at most this power are not "industrial robots"."""
    periodic_inspection_years: Annotated[int, Field(ge=1, le=20)] | None = None
    safety_log_retention_years: Annotated[int, Field(ge=1, le=50)] | None = None


class JurisdictionProfile(Frozen):
    """One jurisdiction's profile: its standards and the values its monitors use."""

    code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    name: str
    standards: tuple[Standard, ...]
    reduced_speed_mps: Speed = REDUCED_SPEED_MPS
    """TCP speed limit while a person is in the collaborative zone."""
    pfl_scale: Annotated[float, Field(gt=0, le=1.0)] = 1.0
    """Multiplier on every ISO/TS 15066 body-region force limit (1 = the standard's values)."""
    separation: Separation = Separation()
    on_violation: OnViolation = "record"
    requirements: Requirements = Requirements()
    notes: str = ""


class Tightening(Frozen):
    """A site's tightening of its jurisdiction's values (site.yaml ``safety.tighten``)."""

    reduced_speed_mps: Speed | None = None
    pfl_scale: Annotated[float, Field(gt=0, le=1.0)] | None = None
    separation: dict[str, float] = {}
    on_violation: OnViolation | None = None


class ProfileError(ValueError):
    """A profile file that does not validate, or a tightening that loosens a value.

    Attributes:
        key: Where (``safety.tighten.reduced_speed_mps``, or ``<file>: <key>``).
        expected: What would have been accepted.
        got: The value given.
    """

    def __init__(self, key: str, expected: str, got: object = None) -> None:
        self.key, self.expected, self.got = key, expected, got
        shown = "" if got is None else f" (got {got!r})"
        super().__init__(f"{key}: expected {expected}{shown}")


def jurisdiction_codes() -> list[str]:
    """The shipped jurisdiction codes, sorted."""
    return sorted(p.stem.upper() for p in PROFILE_DIR.glob("*.yaml"))


@cache
def load_profile(code: str) -> JurisdictionProfile:
    """The shipped profile of ``code`` (``KR``, ``JP``, ``US``, ``EU``).

    Raises:
        ProfileError: Naming the code and the known ones, or the file, key and value.
    """
    path = PROFILE_DIR / f"{code.lower()}.yaml"
    if code != code.upper() or not path.is_file():
        raise ProfileError(
            "jurisdiction", f"one of {', '.join(jurisdiction_codes())} (a shipped profile)", code
        )
    return read_profile(path)


def read_profile(path: Path) -> JurisdictionProfile:
    """Validate a profile file.

    Raises:
        ProfileError: ``<file>: <key>: expected ... (got ...)`` for the first problem.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return JurisdictionProfile.model_validate(data)
    except yaml.YAMLError as exc:
        raise ProfileError(str(path), f"valid YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "top level"
        raise ProfileError(f"{path}: {key}", first["msg"], first.get("input")) from None


def effective_profile(profile: JurisdictionProfile, tighten: Tightening) -> JurisdictionProfile:
    """``profile`` with a site's tightening applied.

    Raises:
        ProfileError: ``safety.tighten.<key>: expected <= 0.25 (KR's value: a site may tighten
            its jurisdiction's values, never loosen them), got 0.3``, or an unknown key.
    """
    changes: dict[str, object] = {}
    where = "safety.tighten"
    if tighten.reduced_speed_mps is not None:
        _at_most(f"{where}.reduced_speed_mps", tighten.reduced_speed_mps,
                 profile.reduced_speed_mps, profile.code)  # fmt: skip
        changes["reduced_speed_mps"] = tighten.reduced_speed_mps
    if tighten.pfl_scale is not None:
        _at_most(f"{where}.pfl_scale", tighten.pfl_scale, profile.pfl_scale, profile.code)
        changes["pfl_scale"] = tighten.pfl_scale
    if tighten.separation:
        current = profile.separation.model_dump()
        for key, value in tighten.separation.items():
            if key not in current:
                raise ProfileError(f"{where}.separation.{key}", f"one of {', '.join(current)}")
            if not value >= current[key]:  # every term only adds distance
                raise ProfileError(
                    f"{where}.separation.{key}",
                    f">= {current[key]:g} ({_NEVER_LOOSER.format(profile.code)})",
                    value,
                )
        changes["separation"] = profile.separation.model_copy(update=dict(tighten.separation))
    if tighten.on_violation is not None:
        if _STRICTNESS[tighten.on_violation] < _STRICTNESS[profile.on_violation]:
            raise ProfileError(
                f"{where}.on_violation",
                f"{profile.on_violation} ({_NEVER_LOOSER.format(profile.code)})",
                tighten.on_violation,
            )
        changes["on_violation"] = tighten.on_violation
    return profile.model_copy(update=changes)


_NEVER_LOOSER = "{}'s value: a site may tighten its jurisdiction's values, never loosen them"


def _at_most(key: str, value: float, limit: float, code: str) -> None:
    if value > limit:
        raise ProfileError(key, f"<= {limit:g} ({_NEVER_LOOSER.format(code)})", value)
