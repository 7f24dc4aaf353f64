"""Safeguards in the layout against the jurisdiction's national requirements.

A site lists its safeguards in site.yaml (``safety.safeguards``): perimeter fences and sensing
protective devices (light curtains, safety laser scanners, pressure-sensitive mats), each
naming the walkways it guards::

    safety:
      jurisdiction: KR
      safeguards:
      - {name: scanner1, kind: safety_scanner, guards: [walk1]}
      - {name: fence1, kind: fence, height_m: 1.8, guards: [walk2]}

Where the jurisdiction's profile says ``requirements.fence_or_sensing_required``, every walkway
a co-worker uses to enter the cell must be guarded by a sensing device or by a fence at least
``fence_min_height_m`` high, unless the robot is low-power exempt (every drive motor at most
``low_power_exempt_motor_w``; assessable only where the robot model's rated drive-motor power
is known, `envs.robots.models`). `safeguard_findings` says where it is not: a compliance
finding (``testbed sites check`` prints it as a warning, the report's compliance section marks
the site's cells as violating), not a physics infeasibility. Indicative, not legal advice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from envs.errors import DataIssue
from envs.factory._model import IDENTIFIER_PATTERN, Frozen
from envs.robots.models import ROBOT_MODELS

if TYPE_CHECKING:
    from envs.factory.schema import SiteSpec

SafeguardKind = Literal["fence", "light_curtain", "safety_scanner", "pressure_mat"]
SENSING_KINDS: tuple[SafeguardKind, ...] = ("light_curtain", "safety_scanner", "pressure_mat")
"""Sensing protective devices (ISO 13855 positions them; they stop the robot on detection)."""
_Id = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]


class Safeguard(Frozen):
    """One safeguard of the cell (site.yaml ``safety.safeguards``)."""

    name: _Id
    kind: SafeguardKind
    guards: Annotated[tuple[_Id, ...], Field(min_length=1)]
    """The ``walkway`` stations (stations.csv) whose entry into the cell it guards."""
    height_m: Annotated[float, Field(gt=0, le=5.0, allow_inf_nan=False)] | None = None
    """A fence's height (fences only)."""

    @model_validator(mode="after")
    def _height_for_fences(self) -> Safeguard:
        if self.kind == "fence" and self.height_m is None:
            raise ValueError("expected height_m (m) for a fence")
        if self.kind != "fence" and self.height_m is not None:
            raise ValueError(f"expected no height_m for a {self.kind} (fences only)")
        return self


def low_power_exempt(model: str, limit_w: float | None) -> bool | None:
    """Whether every drive motor of ``model`` is at most ``limit_w``; None if not assessable."""
    if limit_w is None:
        return False
    rated = ROBOT_MODELS[model].max_drive_motor_w
    return None if rated is None else rated <= limit_w


@dataclass(frozen=True)
class Unguarded:
    """A co-worker's walkway that the jurisdiction wants guarded and the layout does not.

    Attributes:
        coworker: The person's index in site.yaml ``coworkers``.
        walkway: Their walkway station.
        jurisdiction: The profile's code.
        source: Where the requirement comes from (law or standard, clause).
        needed: What would satisfy it (``a fence >= 1.8 m or a sensing protective device``).
        short: Safeguards on the walkway that fall short (a fence too low), as text.
        exemption: Why the low-power exemption does not help, or ``""``.
    """

    coworker: int
    walkway: str
    jurisdiction: str
    source: str
    needed: str
    short: tuple[str, ...]
    exemption: str

    def issue(self) -> DataIssue:
        """As a bundle finding (``testbed sites check`` prints it as a warning)."""
        got = f"{self.walkway!r}, unguarded"
        got += "".join(f"; {text}" for text in (*self.short, self.exemption) if text)
        expected = (
            f"{self.needed} guarding walkway {self.walkway!r} in safety.safeguards: "
            f"{self.jurisdiction} requires one where a co-worker shares the cell ({self.source})"
            " - indicative, not legal advice"
        )
        return DataIssue("site.yaml", f"coworkers[{self.coworker}].walkway", got, expected)

    def verdict(self) -> str:
        """As a site-level compliance finding (the report's compliance section)."""
        text = (f"violates: fence or sensing device required by {self.jurisdiction} "
                f"({self.source}) where a co-worker shares the cell: walkway {self.walkway!r} "
                "unguarded")  # fmt: skip
        return text + "".join(f"; {t}" for t in (*self.short, self.exemption) if t)


def unguarded_walkways(spec: SiteSpec) -> list[Unguarded]:
    """Every co-worker walkway the jurisdiction wants guarded and the layout leaves open.

    Empty where the site has no jurisdiction, no co-workers or no such requirement, or the
    robot is low-power exempt.
    """
    safety = spec.site.safety
    profile = safety.profile()
    if profile is None or not spec.site.coworkers:
        return []
    needs = profile.requirements
    if not needs.fence_or_sensing_required:
        return []
    exempt = low_power_exempt(spec.site.robot.model, needs.low_power_exempt_motor_w)
    if exempt:
        return []
    exemption = "" if exempt is not None else (
        f"the low-power exemption (<= {needs.low_power_exempt_motor_w:g} W per drive motor) "
        f"cannot be assessed: no cited rated motor power for {spec.site.robot.model}"
    )  # fmt: skip
    min_height = needs.fence_min_height_m or 0.0
    fence = f"a fence >= {min_height:g} m" if min_height else "a fence"
    needed = f"{fence} or a sensing protective device ({', '.join(SENSING_KINDS)})"
    found = []
    for index, person in enumerate(spec.site.coworkers):
        guards = [s for s in safety.safeguards if person.walkway in s.guards]
        if any(s.kind in SENSING_KINDS or (s.height_m or 0.0) >= min_height for s in guards):
            continue
        short = tuple(f"fence {s.name} is {s.height_m:g} m" for s in guards if s.kind == "fence")
        source = needs.fence_or_sensing_source or profile.name
        found.append(Unguarded(index, person.walkway, profile.code, source, needed, short,
                               exemption))  # fmt: skip
    return found


def safeguard_findings(spec: SiteSpec) -> list[DataIssue]:
    """`unguarded_walkways` as bundle findings (site.yaml ``coworkers[i].walkway``)."""
    return [unguarded.issue() for unguarded in unguarded_walkways(spec)]
