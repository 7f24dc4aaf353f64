"""The finger gripper on its own, for each robot model: grasp, lift, release and slip.

A robot, a pedestal and a box part, no task (`tests/envs/test_fingers_env.py` runs whole envs).
"""

from __future__ import annotations

import numpy as np
import pytest

from envs.cells.fingers import FingerGripper
from envs.factory.schema import ControllerSpec, GripperSpec
from envs.robots.arm import CartesianArm
from envs.sim import Sim

PEDESTAL_TOP_M = 0.10
BOX_HALF = (0.025, 0.02, 0.015)  # narrow side across the jaws: 40 mm
MODELS = ["panda", "kuka_iiwa", "xarm6"]


class Rig:
    """A robot at the origin, a pedestal and a box on it under the tool, 30 Hz control.

    The box (half extents ``half``) weighs 0.2 kg with friction 0.8 unless ``mass`` and
    ``friction`` say otherwise;
    ``gripper`` is the site's finger settings (the bundle's defaults unless given).
    """

    def __init__(
        self,
        model: str,
        mass: float = 0.2,
        friction: float = 0.8,
        gripper: GripperSpec | None = None,
        half: tuple[float, float, float] = BOX_HALF,
    ) -> None:
        self.sim = Sim(1.0 / 240.0, (0.0, 0.0, -9.81), 50)
        self.sim.create_box((0.15, 0.15, PEDESTAL_TOP_M / 2), (0.45, 0.0, PEDESTAL_TOP_M / 2))
        self.arm = CartesianArm(
            self.sim, model, (0.0, 0.0, 0.0), 0.0, ControllerSpec(), PEDESTAL_TOP_M + 0.004
        )
        spec = gripper or GripperSpec(kind="fingers")
        self.gripper = FingerGripper(self.sim, self.arm, spec)
        self.arm.reset()
        self.gripper.reset()
        center = (0.45, 0.0, PEDESTAL_TOP_M + half[2] + 0.0001)
        self.box = self.sim.create_box(half, center, mass=mass, friction=friction)
        self.events: list[str] = []

    def run(self, goal: tuple[float, float, float], steps: int, grip: bool) -> None:
        """Move the tool toward ``goal`` (1 cm per step at most) with the jaws closed or open."""
        for _ in range(steps):
            tool = self.arm.tool_state()[0]
            released = self.gripper.command(grip)
            self.arm.command(np.clip(np.asarray(goal) - tool, -0.01, 0.01), tool)
            self.sim.advance(8, [], (0.0, 0.0, 0.0), self.arm.body, self.arm.arm_joints)
            tool = self.arm.tool_state()[0]
            self.events += [released] if released else []
            if not self.gripper.check_hold(tool):
                self.events.append("grip_lost")
            if self.gripper.try_grasp({self.box: None}, tool) is not None:  # type: ignore[dict-item]
                self.events.append("fingers_engaged")

    def box_z(self) -> float:
        return float(self.sim.base_pose(self.box)[0][2])

    def pick_and_lift(self) -> None:
        self.run((0.45, 0.0, 0.2), 40, grip=False)
        self.run((0.45, 0.0, PEDESTAL_TOP_M + 0.004), 30, grip=False)
        self.run((0.45, 0.0, PEDESTAL_TOP_M + 0.004), 10, grip=True)
        self.run((0.45, 0.0, 0.25), 30, grip=True)


@pytest.mark.parametrize("model", MODELS)
def test_pick_and_lift_holds_the_box(model: str) -> None:
    rig = Rig(model)
    rig.pick_and_lift()
    assert rig.events == ["fingers_engaged"]
    assert rig.gripper.held == rig.box
    assert rig.box_z() > PEDESTAL_TOP_M + BOX_HALF[2] + 0.12  # lifted with the tool
    tool = rig.arm.tool_state()[0]
    assert abs(float(tool[2]) - rig.box_z()) < 0.03


@pytest.mark.parametrize("model", MODELS)
def test_opening_the_jaws_releases_and_drops_the_part(model: str) -> None:
    rig = Rig(model)
    rig.pick_and_lift()
    assert rig.gripper.command(False) == "release"
    assert rig.gripper.held is None
    rig.run((0.45, 0.0, 0.25), 20, grip=False)
    assert rig.box_z() == pytest.approx(PEDESTAL_TOP_M + BOX_HALF[2], abs=0.003)  # back down


@pytest.mark.parametrize("model", MODELS)
def test_a_part_too_heavy_for_the_grip_slips_out_and_is_reported(model: str) -> None:
    rig = Rig(model)
    rig.pick_and_lift()
    rig.sim.set_dynamics(rig.box, -1, mass=30.0)  # 294 N against 2 x 40 N x friction 0.8
    rig.run((0.45, 0.0, 0.25), 10, grip=True)
    assert rig.events == ["fingers_engaged", "grip_lost"]
    assert rig.gripper.held is None
    assert rig.box_z() < PEDESTAL_TOP_M + 0.05  # it fell


@pytest.mark.parametrize(
    ("grip_force_n", "finger_friction", "kept"),
    [(40.0, 1.0, False), (100.0, 1.0, False), (40.0, 2.0, False), (100.0, 2.0, True)],
)
def test_the_kuka_carries_a_heavy_part_only_with_a_firm_grip_and_rubber_pads(
    grip_force_n: float, finger_friction: float, kept: bool
) -> None:
    """An 80 x 80 x 30 mm part of 1.2 kg, friction 0.6 (jp-nagoya's gear blank), carried.

    Lifted 13 cm, then carried 35 cm across and 25 cm along at up to 0.3 m/s. The KUKA
    model's claw tips touch a part at a few points: at the bundle's defaults (40 N, pads
    1.0) it slides out as the arm lifts; a firmer grip or rubber pads alone lift it but lose
    it when the carry turns; both keep it (docs/factory_bundle.md, grippers).
    """
    spec = GripperSpec(kind="fingers", grip_force_n=grip_force_n, finger_friction=finger_friction)
    rig = Rig("kuka_iiwa", mass=1.2, friction=0.6, gripper=spec, half=(0.04, 0.04, 0.015))
    rig.pick_and_lift()
    rig.run((0.45, -0.35, 0.25), 45, grip=True)
    rig.run((0.2, -0.35, 0.25), 35, grip=True)
    if kept:
        assert rig.events == ["fingers_engaged"]
        box = rig.sim.base_pose(rig.box)[0]
        assert np.allclose(box, rig.arm.tool_state()[0], atol=0.03), box
    else:
        assert rig.events[:2] == ["fingers_engaged", "grip_lost"], rig.events
