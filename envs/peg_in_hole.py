"""`Testbed/PegInHole-v0`: pick a peg from its nest and insert it into a hole fixture.

Everything that makes a site's insertion hard is factory data: the hole's clearance, depth and
chamfer, the peg's size, mass and friction, the hole's pose noise (site.yaml's ``peg-in-hole``
section, `envs.factory.task_sections.PegInHoleSection`), the two fixtures' poses (``fixture``
rows of stations.csv), and the robot, control rate, sensors, link latency and force limit of
the site. The peg is a box primitive in a hole of four box walls (`envs.cells.hole`); the
grasp is the site's gripper: its suction cup, or fingers on the peg's sides.

Observation (`Dict` of float32 `Box`es; positions, velocities and vectors in the robot base
frame):

=============  =====  ================================================================
field          shape  meaning
=============  =====  ================================================================
ee_pos         3      tool centre point position
ee_vel         3      tool centre point velocity
gripper        1      1 if the gripper is on (suction on, jaws closing), else 0
holding        1      1 if the peg is held (on the cup, or between the jaws), else 0
peg_pos        3      peg's centre (sensor reading: the site's noise, latency, dropout)
peg_vel        3      peg's velocity (sensor reading)
peg_axis       3      unit vector along the peg's axis (exact; (0, 0, 1) when upright)
peg_size       3      peg's full extents (x, y, height)
hole_pos       3      centre of the hole's mouth (a second sensor of the same profile)
hole_size      3      the gap's full width along x and y, and the hole's depth
wrist_force    3      sum of contact forces on the held peg from all but the robot (N)
time           1      elapsed fraction of the episode's time limit
=============  =====  ================================================================

Action: `Box(-1, 1, (4,))`, the same as every Testbed task: tool displacement (x, y, z) as a
fraction of the site controller's ``max_ee_speed_mps`` times the control period, and suction
(on if > 0).

Reward: ``-distance(peg bottom centre, hole floor centre)`` (m), less the tool's distance to
the peg's top face while the peg is neither held nor inserted; +1 on the first grasp, +5 when
assembled, -3 when dropped, -0.1 per safety violation (the env's, and a wrist force above the
site's ``max_contact_force_n``).

Success (`envs.tasks.peg_in_hole`): inserted (at least 90% of the hole depth, inside the gap,
upright within ``upright_tolerance_rad``) and at rest. The episode terminates when the peg is
assembled (inserted, released and at rest) or dropped; ``success_at_end`` is inserted and at
rest at the last step, ``success_once`` inserted at some step.

Outcome (``episode_metrics["outcome"]``): ``success``; ``dropped peg at step <n>``;
``jam: peg stuck at <d> of <D> mm (<k> jams, peak <F> N)``; ``time limit: peg inserted <d>
of <D> mm``, ``... peg tilted <a> deg at ...``, ``... peg not in the hole (<m> mm off its
axis)``, ``... peg not picked`` (``step cap at step <n>`` for an episode stopped early).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envs.core import CellEnv
from envs.factory.schema import SiteSpec
from envs.factory.task_sections import PegInHoleSection
from envs.tasks.peg_in_hole import PegInHole

__all__ = ["PegInHoleEnv"]


class PegInHoleEnv(CellEnv):
    """A site's cell running the peg-in-hole task.

    Args:
        site: A packaged site id, a bundle folder, or a loaded `SiteSpec`.
        overrides: Fields of the site's ``peg-in-hole`` section to replace (``clearance_m``,
            ``time_limit_s``, ...), validated like the section.

    The rendering options are `CellEnv`'s.

    Raises:
        pydantic.ValidationError: If an override is not a valid section value.
        ValueError: If the section's stations are not fixtures or the hole does not fit.
    """

    task: PegInHole

    def __init__(
        self,
        site: str | SiteSpec = "kr-changwon",
        render_mode: str | None = None,
        render_size: tuple[int, int] = (320, 240),
        renderer: str = "tiny",
        camera: str | None = None,
        overrides: dict[str, Any] | None = None,
        camera_obs: Mapping[str, Any] | None = None,
    ) -> None:
        def make_task(spec: SiteSpec) -> PegInHole:
            section = spec.site.task_section(PegInHoleSection)
            if overrides:
                section = PegInHoleSection.model_validate({**section.model_dump(), **overrides})
            return PegInHole(spec, section)

        super().__init__(
            make_task, site, render_mode, render_size, renderer, camera, camera_obs=camera_obs
        )

    @property
    def section(self) -> PegInHoleSection:
        """The peg-in-hole section the env runs (the site's, with any overrides)."""
        return self.task.section
