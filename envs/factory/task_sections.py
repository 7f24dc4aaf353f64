"""site.yaml's ``tasks:`` list: one section per task the site runs, keyed on ``kind``.

Each task reads its own section (`SiteFile.task_section`); a task the site does not list runs
with its section's defaults. Adding a task adds its section model here and to `TaskSection`.

Example::

    tasks:
      - kind: conveyor-sort
        parts_per_episode: 3
        time_limit_s: 35
      - kind: touch-part
        time_limit_s: 3
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from envs.factory._model import Frozen

TimeLimit = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]


class ConveyorSortSection(Frozen):
    """`Testbed/ConveyorSort-v0`: how many parts an episode brings and how long it lasts."""

    kind: Literal["conveyor-sort"] = "conveyor-sort"
    parts_per_episode: Annotated[int, Field(ge=1, le=50)] = 3
    time_limit_s: TimeLimit = 40.0


class TouchPartSection(Frozen):
    """`Testbed/TouchPart-v0`: how long an episode lasts and what counts as touching."""

    kind: Literal["touch-part"] = "touch-part"
    time_limit_s: TimeLimit = 3.0
    success_radius_m: Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False)] = 0.02
    """Distance from the part's top-face centre that counts as touching it."""


PegExtent = Annotated[float, Field(ge=0.005, le=0.3, allow_inf_nan=False)]


class PegInHoleSection(Frozen):
    """`Testbed/PegInHole-v0`: the two fixtures, the peg, the hole's fit and the tolerances.

    The hole is cut into ``hole_station`` (a ``fixture`` in stations.csv): four walls of
    ``wall_m`` around a square gap ``clearance_m`` wider than the peg on every side, standing
    ``hole_depth_m`` tall on the fixture's top face (the hole's floor). The peg is a box or
    cylinder primitive standing upright on top of ``peg_station`` (a ``fixture``, the peg nest).
    The peg's size, mass and friction are here rather than in parts.csv: parts.csv lists what
    the conveyor brings, each part with a bin.
    """

    kind: Literal["peg-in-hole"] = "peg-in-hole"
    hole_station: Annotated[str, Field(min_length=1)] = "hole1"
    """The ``fixture`` station whose top face is the hole's floor."""
    peg_station: Annotated[str, Field(min_length=1)] = "nest1"
    """The ``fixture`` station the peg starts on, standing upright at its top-face centre."""
    peg_shape: Literal["box", "cylinder"] = "box"
    """A box peg keeps the yaw it was picked with; a cylinder (a round pin) fits at any yaw."""
    peg_size_m: tuple[PegExtent, PegExtent, PegExtent] = (0.03, 0.03, 0.07)
    """Full extents (x, y, height) of the peg; a cylinder's x and y are its diameter."""
    peg_mass_kg: Annotated[float, Field(gt=0, le=5.0, allow_inf_nan=False)] = 0.1
    peg_friction: Annotated[float, Field(ge=0, le=2.0, allow_inf_nan=False)] = 0.5
    clearance_m: Annotated[float, Field(ge=0.0001, le=0.005, allow_inf_nan=False)] = 0.001
    """Gap between the peg and the hole's wall on each side (radial clearance)."""
    hole_depth_m: Annotated[float, Field(ge=0.005, le=0.2, allow_inf_nan=False)] = 0.03
    chamfer_m: Annotated[float, Field(ge=0, le=0.01, allow_inf_nan=False)] = 0.0
    """Width (= height) of the 45-degree lead-in at the hole's mouth; 0 for a sharp edge."""
    wall_m: Annotated[float, Field(ge=0.005, le=0.1, allow_inf_nan=False)] = 0.02
    hole_pose_noise_m: Annotated[float, Field(ge=0, le=0.02, allow_inf_nan=False)] = 0.0
    """Largest offset (x and y, uniform) of the hole from the fixture's centre, per episode."""
    upright_tolerance_rad: Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False)] = 0.1
    """Largest tilt of the peg's axis from vertical that counts as inserted."""
    time_limit_s: TimeLimit = 20.0

    @field_validator("peg_size_m")
    @classmethod
    def _round_pin(
        cls, size: tuple[float, float, float], info: ValidationInfo
    ) -> tuple[float, float, float]:
        if info.data.get("peg_shape") == "cylinder" and size[0] != size[1]:
            raise ValueError(f"expected a cylinder's x and y (its diameter) equal, got {size[:2]}")
        return size


TaskSection = Annotated[
    ConveyorSortSection | TouchPartSection | PegInHoleSection, Field(discriminator="kind")
]
"""One entry of ``tasks:``; pydantic picks the model by ``kind``."""

SECTION_TYPES: tuple[type[ConveyorSortSection | TouchPartSection | PegInHoleSection], ...] = (
    ConveyorSortSection,
    TouchPartSection,
    PegInHoleSection,
)
"""Every section model, in docs order."""

SECTIONS_BY_KIND: dict[str, type[Frozen]] = {
    section.model_fields["kind"].default: section for section in SECTION_TYPES
}
"""Section model by ``kind``."""
