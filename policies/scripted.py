"""A scripted pick-and-sort controller for ``Testbed/ConveyorSort-v0``, tuned per site.

It reads observation fields by name (never the simulator) and runs the same logic on every
robot: wait upstream, track the part with velocity feed-forward, descend onto its top face with
suction on, lift to a travel height, carry to the drop point and release only when the tool is
within ~1 cm of it and nearly at rest (releasing on the move is what made picks fail in the
probe). Its gains are tuned for one home site: the action scale, control rate, conveyor speed
and link latency of another site make it over- or under-shoot there, which is the transfer gap
the testbed measures.

With ``SortGains.fingers`` (a home site that grips with fingers) the pick differs: descend with
the jaws open until the fingertips are a few millimetres above the part's bottom, close there,
stay down until ``holding`` reports the grip, then carry at most half speed; it still reads
only observations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from policies._controller import controller_spec, tuned_gains
from protos.specs import PolicySpec, SessionInfo

MAX_BINS = 4
OBSERVATION_FIELDS: dict[str, tuple[int, float, float]] = {
    # name: (size, low, high): what Testbed/ConveyorSort-v0 publishes; checked at handshake.
    "ee_pos": (3, -3.0, 3.0),
    "ee_vel": (3, -5.0, 5.0),
    "gripper": (1, 0.0, 1.0),
    "holding": (1, 0.0, 1.0),
    "part_pos": (3, -3.0, 3.0),
    "part_vel": (3, -5.0, 5.0),
    "part_size": (3, 0.0, 2.0),
    "part_type": (MAX_BINS, 0.0, 1.0),
    "bin_pos": (3, -3.0, 3.0),
    "time": (1, 0.0, 1.0),
}


@dataclass(frozen=True)
class SortGains:
    """Tuning of the controller for one site.

    Attributes:
        position_gain: Action per metre of position error.
        velocity_feedforward: Action per m/s of part velocity while tracking.
        lead_time_s: How far ahead to predict a moving part (covers sensing and link latency).
        hover_m: Height above the part's top face while aligning.
        align_tolerance_m: Horizontal error below which the tool descends onto the part.
        travel_z_m: Height (base frame) for moves between belt and bins.
        pick_window_x: Along-belt range (base-frame x) where the robot intercepts parts.
        wait_pos: Where the tool waits for the next part (base frame).
        release_tolerance_m: Distance to the drop point within which suction is released.
        release_speed_mps: Tool speed below which suction is released.
        fingers: The home site grips with fingers, not suction: descend open until the
            fingertips are `grasp_height_m` above the part's bottom (the jaws straddle it),
            close there and lift only once ``holding`` says the part is gripped.
        grasp_height_m: Fingertip height above the part's bottom face when closing.
        grasp_tolerance_m: How close to that height the tool must be before closing.
        finger_carry_speed: With fingers, the longest action (a fraction of the site's tool
            speed) while holding: parts slip out of jaws that move fast (bullet3#2607).
    """

    position_gain: float
    velocity_feedforward: float
    lead_time_s: float
    hover_m: float = 0.05
    align_tolerance_m: float = 0.012
    travel_z_m: float = 0.28
    pick_window_x: tuple[float, float] = (-0.15, 0.35)
    wait_pos: tuple[float, float, float] = (-0.1, 0.42, 0.25)
    release_tolerance_m: float = 0.012
    release_speed_mps: float = 0.05
    fingers: bool = False
    grasp_height_m: float = 0.006
    grasp_tolerance_m: float = 0.003
    finger_carry_speed: float = 0.5


SITE_GAINS: dict[str, SortGains] = {
    # Fast belt: intercept early, upstream; little latency to cover.
    "kr-changwon": SortGains(
        position_gain=11.0,
        velocity_feedforward=1.25,
        lead_time_s=0.05,
        pick_window_x=(-0.2, 0.35),
        wait_pos=(-0.15, 0.42, 0.25),
    ),
    # Slow belt, heavy parts: pick close to the robot where the arm is stiffest.
    "jp-nagoya": SortGains(
        position_gain=20.0,
        velocity_feedforward=2.5,
        lead_time_s=0.10,
        pick_window_x=(0.05, 0.30),
        wait_pos=(0.05, 0.42, 0.25),
        finger_carry_speed=0.3,  # fingers: a 1.2 kg gear blank swings out of the jaws at 0.5
    ),
    # Sensor and link latency: predict further ahead, descend only when well aligned.
    "us-austin": SortGains(
        position_gain=9.0,
        velocity_feedforward=1.67,
        lead_time_s=0.20,
        pick_window_x=(-0.1, 0.30),
        wait_pos=(-0.05, 0.42, 0.25),
        align_tolerance_m=0.008,
        grasp_tolerance_m=0.006,  # fingers: 3 mm sensor noise on the part's height
    ),
}


class ScriptedSortController:
    """The scripted controller; satisfies the SDK `Policy` protocol.

    Args:
        home_site: Site the gains were tuned for (goes into the policy id).
        gains: The tuning; defaults to `SITE_GAINS[home_site]`.
    """

    def __init__(self, home_site: str, gains: SortGains | None = None) -> None:
        self.home_site = home_site
        self.gains = tuned_gains(SITE_GAINS, home_site, gains)

    def spec(self) -> PolicySpec:
        """Identity and the spaces this controller reads and writes."""
        kind = "sort-fingers" if self.gains.fingers else "sort"
        return controller_spec(kind, self.home_site, OBSERVATION_FIELDS)

    def reset(self, session: SessionInfo) -> None:
        """Stateless between steps: nothing to reset."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action from the observation fields."""
        return decide(self.gains, observation)


def scripted_policy(site_id: str, fingers: bool = False) -> ScriptedSortController:
    """The scripted controller tuned for `site_id` (used by ``testbed serve scripted:<site>``).

    ``fingers``: the site grips with fingers (`SortGains.fingers`); a policy config sets it
    with ``factory.fingers: true``.
    """
    if not fingers:
        return ScriptedSortController(site_id)
    gains = tuned_gains(SITE_GAINS, site_id, None)
    return ScriptedSortController(site_id, replace(gains, fingers=True))


def with_gains(controller: ScriptedSortController, **changes: Any) -> ScriptedSortController:
    """A copy of `controller` with some gains changed (for tuning sweeps)."""
    return ScriptedSortController(controller.home_site, replace(controller.gains, **changes))


def decide(g: SortGains, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The control law: a target point and suction state, then a P + feed-forward action."""
    ee = np.asarray(obs["ee_pos"], dtype=np.float64)
    if obs["holding"][0] > 0.5:
        target, suction, feedforward = _carry_target(g, obs, ee)
    elif obs["part_type"].any():
        target, suction, feedforward = _pick_target(g, obs, ee)
    else:
        target, suction, feedforward = np.asarray(g.wait_pos), False, np.zeros(3)
    target = _route_over_obstacles(g, ee, target)
    move = g.position_gain * (target - ee) + feedforward
    action = np.empty(4, dtype=np.float32)
    action[:3] = np.clip(move, -1.0, 1.0)
    if g.fingers and obs["holding"][0] > 0.5:
        length = float(np.linalg.norm(action[:3]))
        if length > g.finger_carry_speed:
            action[:3] *= g.finger_carry_speed / length
    action[3] = 1.0 if suction else -1.0
    return action


def _pick_target(
    g: SortGains, obs: Mapping[str, np.ndarray], ee: np.ndarray
) -> tuple[np.ndarray, bool, np.ndarray]:
    part = np.asarray(obs["part_pos"], dtype=np.float64)
    velocity = np.asarray(obs["part_vel"], dtype=np.float64)
    velocity[2] = 0.0
    predicted = part + velocity * g.lead_time_s
    top = part[2] + float(obs["part_size"][2]) / 2.0
    start, end = g.pick_window_x
    if predicted[0] < start:  # not yet in reach: wait above the window's entry, on its line
        return np.array([start, predicted[1], top + g.hover_m]), False, np.zeros(3)
    if predicted[0] > end:  # past the window: give up on tracking, let it go
        return np.asarray(g.wait_pos), False, np.zeros(3)
    feedforward = g.velocity_feedforward * velocity
    aligned = np.hypot(*(predicted[:2] - ee[:2])) < g.align_tolerance_m
    if g.fingers:
        return _finger_pick(g, obs, ee, predicted, aligned, feedforward)
    z = top - 0.004 if aligned else top + g.hover_m
    near = ee[2] - top < g.hover_m + 0.02
    return np.array([predicted[0], predicted[1], z]), aligned or near, feedforward


def _finger_pick(
    g: SortGains,
    obs: Mapping[str, np.ndarray],
    ee: np.ndarray,
    predicted: np.ndarray,
    aligned: bool,
    feedforward: np.ndarray,
) -> tuple[np.ndarray, bool, np.ndarray]:
    """Straddle the part with open jaws, close at grasp height, hold there until gripped.

    The jaws close once the fingertips are within `grasp_tolerance_m` of the grasp height and
    stay closed while within twice that (and roughly aligned): a band, so that sensor noise
    and link latency do not turn a grasp into on-off pulses, and the tool stays down until
    ``holding`` hands over to the carry (lifting first is what loses finger grasps). Jaws that
    closed on top of the part leave the tool above the band: they open and it tries again.
    """
    half = float(obs["part_size"][2]) / 2.0
    top = predicted[2] + half
    grasp_z = max(predicted[2] - half + g.grasp_height_m, top - 0.035)
    above = ee[2] - grasp_z
    error = float(np.hypot(*(predicted[:2] - ee[:2])))
    if above < 2.0 * g.grasp_tolerance_m and error < 2.0 * g.align_tolerance_m:
        closing = obs["gripper"][0] > 0.5 or above < g.grasp_tolerance_m
        target = np.array([predicted[0], predicted[1], grasp_z - g.grasp_tolerance_m])
        return target, closing, feedforward
    if not aligned and ee[2] < top + 0.01:  # low beside the part: rise before closing in
        return np.array([predicted[0], predicted[1], top + g.hover_m]), False, feedforward
    # Aim below the grasp height (the controller stops at its workspace floor): the tool
    # settles well inside the closing band instead of hovering at its edge.
    z = grasp_z - g.grasp_tolerance_m if aligned else top + g.hover_m
    return np.array([predicted[0], predicted[1], z]), False, feedforward


def _carry_target(
    g: SortGains, obs: Mapping[str, np.ndarray], ee: np.ndarray
) -> tuple[np.ndarray, bool, np.ndarray]:
    drop = np.asarray(obs["bin_pos"], dtype=np.float64)
    speed = float(np.linalg.norm(obs["ee_vel"]))
    at_drop = np.linalg.norm(drop - ee) < g.release_tolerance_m and speed < g.release_speed_mps
    return drop, not at_drop, np.zeros(3)


def _route_over_obstacles(g: SortGains, ee: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rise to travel height before long horizontal moves, so bins and belt are cleared."""
    far = np.hypot(*(target[:2] - ee[:2])) > 0.08
    if far and ee[2] < g.travel_z_m - 0.03:
        return np.array([ee[0], ee[1], max(target[2], g.travel_z_m)])
    if far:
        return np.array([target[0], target[1], max(target[2], g.travel_z_m)])
    return target
