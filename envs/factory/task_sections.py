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


MAX_CARTONS = 24
"""Most cartons a palletizing pattern may hold (the observation's counts are bounded by it)."""
Metres = Annotated[float, Field(ge=-2.0, le=2.0, allow_inf_nan=False)]
Radians = Annotated[float, Field(ge=-6.2832, le=6.2832, allow_inf_nan=False)]
CartonExtent = Annotated[float, Field(ge=0.02, le=0.6, allow_inf_nan=False)]
Slot = tuple[Metres, Metres, Radians]
"""One carton of a layer: centre x, y (m) and yaw (rad) in the pallet's frame."""


class CartonSpec(Frozen):
    """The carton a palletizing site handles: a box primitive."""

    size_m: tuple[CartonExtent, CartonExtent, CartonExtent] = (0.12, 0.08, 0.06)
    """Full extents (x, y, z) in the carton's own frame; a slot's yaw turns its x axis."""
    mass_kg: Annotated[float, Field(gt=0, le=50.0, allow_inf_nan=False)] = 0.5
    friction: Annotated[float, Field(ge=0, le=5.0, allow_inf_nan=False)] = 0.8
    color: Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$")] = "#B5895A"


class PalletizeSection(Frozen):
    """`Testbed/Palletize-v0`: the stations, the carton, the stacking pattern, the tolerances.

    ``layers`` is the pattern, bottom layer first: each layer a list of ``[x, y, yaw]`` slots in
    the pallet's frame (origin at the centre of its top face, yaw about z); a layer stands on the
    one below, one carton height up. Cartons are placed in pattern order, one at a time: each
    enters ``infeed_station`` (a conveyor) ``infeed_length_m`` upstream of the pick point, already
    turned to its slot's yaw (the infeed's turner), and rides the belt at its speed to a stop
    gate at ``pick_along_m`` (m along the belt from its centre), where it waits for the robot.
    The next carton enters once the robot has taken the last one off the belt.
    """

    kind: Literal["palletize"] = "palletize"
    infeed_station: Annotated[str, Field(min_length=1)] = "conv1"
    """The ``conveyor`` station (stations.csv) cartons arrive on."""
    pick_along_m: Metres = -0.25
    """Where the stop gate holds a carton: its centre, metres along the belt from its centre."""
    infeed_length_m: Annotated[float, Field(ge=0, le=2.0, allow_inf_nan=False)] = 0.3
    """How far upstream of the stop gate a carton enters the belt."""
    pallet_station: Annotated[str, Field(min_length=1)] = "pallet1"
    """The ``pallet`` station (stations.csv) cartons are stacked on."""
    carton: CartonSpec = CartonSpec()
    layers: tuple[tuple[Slot, ...], ...] = (((0.0, -0.045, 0.0), (0.0, 0.045, 0.0)),)
    time_limit_s: TimeLimit = 60.0
    position_tolerance_m: Annotated[float, Field(gt=0, le=0.1, allow_inf_nan=False)] = 0.01
    """Largest horizontal distance of a placed carton's centre from its slot (and height error)."""
    yaw_tolerance_rad: Annotated[float, Field(gt=0, le=0.8, allow_inf_nan=False)] = 0.0873
    """Largest yaw error of a placed carton (5 degrees; a box's yaw counts modulo pi)."""
    settle_s: Annotated[float, Field(ge=0, le=10.0, allow_inf_nan=False)] = 1.0
    """How long the whole stack must rest in tolerance for success."""
    lateral_jitter_m: Annotated[float, Field(ge=0, le=0.05, allow_inf_nan=False)] = 0.01
    """Largest offset of an entering carton from the belt's centre line (uniform, either side)."""
    yaw_jitter_rad: Annotated[float, Field(ge=0, le=0.05, allow_inf_nan=False)] = 0.02
    """Largest yaw error (uniform) of an entering carton from its slot's yaw."""

    @field_validator("layers")
    @classmethod
    def _pattern_size(cls, layers: tuple[tuple[Slot, ...], ...]) -> tuple[tuple[Slot, ...], ...]:
        count = sum(len(layer) for layer in layers)
        if not layers or any(not layer for layer in layers):
            raise ValueError("expected at least one layer, each with at least one slot")
        if count > MAX_CARTONS:
            raise ValueError(f"expected at most {MAX_CARTONS} slots in all, got {count}")
        return layers

    def slots(self) -> tuple[tuple[int, Slot], ...]:
        """Every slot in placing order, with its layer index (0 at the bottom)."""
        return tuple((index, slot) for index, layer in enumerate(self.layers) for slot in layer)


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
    peg_pose_noise_m: Annotated[float, Field(ge=0, le=0.02, allow_inf_nan=False)] = 0.0
    """Largest offset (x and y, uniform) of the peg from its nest's centre, per episode (the
    play of the nest's pocket, or a feeder's placement accuracy)."""
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
    ConveyorSortSection | TouchPartSection | PalletizeSection | PegInHoleSection,
    Field(discriminator="kind"),
]
"""One entry of ``tasks:``; pydantic picks the model by ``kind``."""

SECTION_TYPES: tuple[
    type[ConveyorSortSection | TouchPartSection | PalletizeSection | PegInHoleSection], ...
] = (
    ConveyorSortSection,
    TouchPartSection,
    PalletizeSection,
    PegInHoleSection,
)
"""Every section model, in docs order."""

SECTIONS_BY_KIND: dict[str, type[Frozen]] = {
    section.model_fields["kind"].default: section for section in SECTION_TYPES
}
"""Section model by ``kind``."""
