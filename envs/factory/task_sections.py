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

from pydantic import Field

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


TaskSection = Annotated[ConveyorSortSection | TouchPartSection, Field(discriminator="kind")]
"""One entry of ``tasks:``; pydantic picks the model by ``kind``."""

SECTION_TYPES: tuple[type[ConveyorSortSection | TouchPartSection], ...] = (
    ConveyorSortSection,
    TouchPartSection,
)
"""Every section model, in docs order."""

SECTIONS_BY_KIND: dict[str, type[Frozen]] = {
    section.model_fields["kind"].default: section for section in SECTION_TYPES
}
"""Section model by ``kind``."""
