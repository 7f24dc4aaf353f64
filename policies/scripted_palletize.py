"""A scripted palletizing controller for ``Testbed/Palletize-v0``, tuned per site.

It reads observation fields by name (never the simulator), like `policies.scripted`: wait
above the carton until the stop gate holds it, descend onto its top face with suction on, lift
to a travel height that clears the stack, carry so that the carton's centre (not the tool) goes
over its slot (the suction cup holds a carton off-centre by as much as it landed off-centre),
lower it to just above the slot and release only when it is within a few millimetres and nearly
at rest; then rise straight up before the next move. Its gains are tuned for one home site:
another site's action scale, control rate, latency, carton height and pattern make it over- or
under-shoot there.

With ``PalletizeGains.fingers`` (a home site that grips with fingers) the pick differs: descend
with the jaws open around the carton until the fingertips are ``finger_grasp_m`` above its
bottom, close there, lift once ``holding`` reports the grip and carry at most
``finger_carry_speed``; opening the jaws at the slot releases it. Whether the jaws fit beside
the cartons already on the pallet is the bundle's concern (`envs.factory.finger_room`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from policies._controller import controller_spec, tuned_gains
from protos.specs import PolicySpec, SessionInfo

MAX_CARTONS = 24
HALF_PI = float(np.pi / 2.0)
OBSERVATION_FIELDS: dict[str, tuple[int, float, float]] = {
    # name: (size, low, high): what Testbed/Palletize-v0 publishes; checked at handshake.
    "ee_pos": (3, -3.0, 3.0),
    "ee_vel": (3, -5.0, 5.0),
    "gripper": (1, 0.0, 1.0),
    "holding": (1, 0.0, 1.0),
    "carton_pos": (3, -3.0, 3.0),
    "carton_vel": (3, -5.0, 5.0),
    "carton_yaw": (1, -HALF_PI, HALF_PI),
    "carton_size": (3, 0.0, 2.0),
    "slot_pos": (3, -3.0, 3.0),
    "slot_yaw": (1, -HALF_PI, HALF_PI),
    "placed": (1, 0.0, float(MAX_CARTONS)),
    "cartons": (1, 0.0, float(MAX_CARTONS)),
    "time": (1, 0.0, 1.0),
}


@dataclass(frozen=True)
class PalletizeGains:
    """Tuning of the controller for one site.

    Attributes:
        position_gain: Action per metre of position error.
        hover_m: Height of the tool above the carton's top face while aligning over it.
        align_tolerance_m: Horizontal error below which the tool descends (pick and place).
        clearance_m: Height of the held carton's bottom above the stack's top while travelling.
        release_gap_m: Height of the carton's bottom above its slot's bottom when released.
        release_tolerance_m: Horizontal error of the carton from its slot to release at.
        release_speed_mps: Tool speed below which the carton is released.
        rest_speed_mps: Carton speed below which the tool descends onto it.
        min_travel_z_m: Lowest travel height of the tool (base frame): clears a carton on the belt.
        wait_pos: Where the tool waits when there is no carton (base frame).
        fingers: The home site grips with fingers, not suction: descend with the jaws open
            until the fingertips are `finger_grasp_m` above the carton's bottom, close
            there, lift once ``holding`` says it is gripped; opening the jaws releases it.
        finger_grasp_m: Fingertip height above the carton's bottom when closing.
        finger_carry_speed: With fingers, the longest action (a fraction of the site's tool
            speed) while holding: a carton held by friction swings out of jaws that move fast.
    """

    position_gain: float
    hover_m: float = 0.05
    align_tolerance_m: float = 0.004
    clearance_m: float = 0.05
    release_gap_m: float = 0.004
    release_tolerance_m: float = 0.003
    release_speed_mps: float = 0.03
    rest_speed_mps: float = 0.01
    min_travel_z_m: float = 0.3
    wait_pos: tuple[float, float, float] = (-0.25, 0.25, 0.35)
    fingers: bool = False
    finger_grasp_m: float = 0.015
    finger_carry_speed: float = 0.5


SITE_GAINS: dict[str, PalletizeGains] = {
    # Fast arm and belt, small cartons: stiff tracking.
    "kr-changwon": PalletizeGains(position_gain=10.0),
    # Slow arm, heavy tall cartons: more clearance, gentler release.
    "jp-nagoya": PalletizeGains(position_gain=14.0, clearance_m=0.06, release_speed_mps=0.02),
    # Sensor noise and link latency: lower gain, wider release window.
    "us-austin": PalletizeGains(
        position_gain=6.0,
        align_tolerance_m=0.007,
        release_tolerance_m=0.006,
        rest_speed_mps=0.04,
    ),
}


class ScriptedPalletizeController:
    """The scripted palletizing controller; satisfies the SDK `Policy` protocol.

    Args:
        home_site: Site the gains were tuned for (goes into the policy id).
        gains: The tuning; defaults to `SITE_GAINS[home_site]`.
    """

    def __init__(self, home_site: str, gains: PalletizeGains | None = None) -> None:
        self.home_site = home_site
        self.gains = tuned_gains(SITE_GAINS, home_site, gains)

    def spec(self) -> PolicySpec:
        """Identity and the spaces this controller reads and writes."""
        kind = "palletize-fingers" if self.gains.fingers else "palletize"
        return controller_spec(kind, self.home_site, OBSERVATION_FIELDS)

    def reset(self, session: SessionInfo) -> None:
        """Stateless between steps: nothing to reset."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action from the observation fields."""
        return decide(self.gains, observation)


def scripted_palletize_policy(site_id: str, fingers: bool = False) -> ScriptedPalletizeController:
    """The scripted palletizing controller tuned for `site_id`.

    ``fingers``: the site grips with fingers (`PalletizeGains.fingers`); a policy config sets
    it with ``factory.fingers: true``.
    """
    if not fingers:
        return ScriptedPalletizeController(site_id)
    gains = tuned_gains(SITE_GAINS, site_id, None)
    return ScriptedPalletizeController(site_id, replace(gains, fingers=True))


def decide(g: PalletizeGains, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The control law: a target point and suction state, then a P action."""
    ee = np.asarray(obs["ee_pos"], dtype=np.float64)
    height = float(obs["carton_size"][2])
    if obs["holding"][0] > 0.5:
        target, suction = _place_target(g, obs, ee, height)
    elif height > 0.0:
        target, suction = _pick_target(g, obs, ee, height)
    else:
        target, suction = np.asarray(g.wait_pos), False
    move = g.position_gain * (target - ee)
    action = np.empty(4, dtype=np.float32)
    action[:3] = np.clip(move, -1.0, 1.0)
    if g.fingers and obs["holding"][0] > 0.5:
        length = float(np.linalg.norm(action[:3]))
        if length > g.finger_carry_speed:
            action[:3] *= g.finger_carry_speed / length
    action[3] = 1.0 if suction else -1.0
    return action


def _travel_z(g: PalletizeGains, obs: Mapping[str, np.ndarray], height: float) -> float:
    """Tool height that carries a held carton over the stack (its slot's layer) and the belt."""
    slot_top = float(obs["slot_pos"][2]) + height / 2.0
    return max(slot_top + height + g.clearance_m, g.min_travel_z_m)


def _pick_target(
    g: PalletizeGains, obs: Mapping[str, np.ndarray], ee: np.ndarray, height: float
) -> tuple[np.ndarray, bool]:
    carton = np.asarray(obs["carton_pos"], dtype=np.float64)
    top = carton[2] + height / 2.0
    travel = _travel_z(g, obs, height)
    horizontal = float(np.hypot(*(carton[:2] - ee[:2])))
    if horizontal > 0.03 and ee[2] < travel - 0.03:  # rise clear before moving across
        return np.array([ee[0], ee[1], travel]), False
    if horizontal > 0.03:
        return np.array([carton[0], carton[1], max(travel, top + g.hover_m)]), False
    resting = float(np.linalg.norm(obs["carton_vel"])) < g.rest_speed_mps
    if g.fingers:
        return _finger_pick(g, obs, ee, carton, height, horizontal, resting)
    near = ee[2] - top < g.hover_m / 2.0
    # Once on the way down, a noisy reading a little off does not send the tool back up.
    window = g.align_tolerance_m * (2.5 if near else 1.0)
    aligned = horizontal < window and resting
    z = top - 0.004 if aligned else top + g.hover_m
    return np.array([carton[0], carton[1], z]), aligned or near


def _finger_pick(
    g: PalletizeGains,
    obs: Mapping[str, np.ndarray],
    ee: np.ndarray,
    carton: np.ndarray,
    height: float,
    horizontal: float,
    resting: bool,
) -> tuple[np.ndarray, bool]:
    """Straddle the resting carton with open jaws, close at grasp height, hold until gripped.

    Below the carton's top the tool keeps descending while roughly aligned (2.5x the
    tolerance), so a noisy reading does not pull it up; the jaws stay closed once closing.
    """
    top = carton[2] + height / 2.0
    grasp_z = carton[2] - height / 2.0 + min(g.finger_grasp_m, height / 2.0)
    low = ee[2] < top
    window = g.align_tolerance_m * (2.5 if low else 1.0)
    if horizontal < window and (resting or low):
        closing = obs["gripper"][0] > 0.5 or ee[2] - grasp_z < 0.003
        return np.array([carton[0], carton[1], grasp_z - 0.003]), closing
    if low:  # beside the carton and low: rise before closing in
        return np.array([ee[0], ee[1], top + g.hover_m]), False
    return np.array([carton[0], carton[1], top + g.hover_m]), False


def _place_target(
    g: PalletizeGains, obs: Mapping[str, np.ndarray], ee: np.ndarray, height: float
) -> tuple[np.ndarray, bool]:
    carton = np.asarray(obs["carton_pos"], dtype=np.float64)
    slot = np.asarray(obs["slot_pos"], dtype=np.float64)
    hold = ee - carton  # where the cup holds the carton, from its centre
    error = slot[:2] - carton[:2]
    horizontal = float(np.hypot(*error))
    travel = _travel_z(g, obs, height)
    if horizontal > 0.02:
        if ee[2] < travel - 0.02:  # lift first: the carton must clear the belt and the stack
            return np.array([ee[0], ee[1], travel]), True
        return np.array([ee[0] + error[0], ee[1] + error[1], travel]), True
    release_z = slot[2] + g.release_gap_m
    aligned = horizontal < g.align_tolerance_m
    z = release_z + hold[2] if aligned else max(ee[2], release_z + hold[2] + 0.02)
    target = np.array([ee[0] + error[0], ee[1] + error[1], z])
    speed = float(np.linalg.norm(obs["ee_vel"]))
    down = carton[2] - release_z < 0.004
    release = horizontal < g.release_tolerance_m and down and speed < g.release_speed_mps
    return target, not release
