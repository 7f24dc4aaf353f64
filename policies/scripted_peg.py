"""A scripted pick-and-insert controller for ``Testbed/PegInHole-v0``, tuned per site.

It reads observation fields by name (never the simulator): hover over the peg, descend onto its
top face with suction on, lift it clear of the fixtures, carry it over the hole, align the
peg's bottom with the hole's axis, descend slowly while the wrist force stays below a limit
(back off and re-align when it does not), and release once the peg is deep in the hole and the
tool is at rest; then wait. Noisy sensors (us-austin) are met by averaging: the hole's mouth
over every reading of the episode (it does not move) and the peg's offset from the tool over
every reading while it is held; the controllers of the sites with exact sensors act on the
latest readings. Its gains are tuned for one home site: the clearance, chamfer, action scale,
control rate and sensor noise of another site make it misalign or jam there.

With ``PegGains.fingers`` (a home site that grips with fingers) the pick differs: descend with
the jaws open around the peg until the fingertips are ``finger_depth_m`` below its top, close
there, and lift once ``holding`` reports the grip; the rest is the same, and opening the jaws
releases the peg in the hole.

The controller keeps per-session state (the averages, whether it has released), so one
instance serves several sessions; `reset` clears a session's state at each episode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from policies._controller import controller_spec, tuned_gains
from protos.specs import PolicySpec, SessionInfo

OBSERVATION_FIELDS: dict[str, tuple[int, float, float]] = {
    # name: (size, low, high): what Testbed/PegInHole-v0 publishes; checked at handshake.
    "ee_pos": (3, -3.0, 3.0),
    "ee_vel": (3, -5.0, 5.0),
    "gripper": (1, 0.0, 1.0),
    "holding": (1, 0.0, 1.0),
    "peg_pos": (3, -3.0, 3.0),
    "peg_vel": (3, -5.0, 5.0),
    "peg_axis": (3, -1.0, 1.0),
    "peg_size": (3, 0.0, 2.0),
    "hole_pos": (3, -3.0, 3.0),
    "hole_size": (3, 0.0, 2.0),
    "wrist_force": (3, -500.0, 500.0),
    "time": (1, 0.0, 1.0),
}


@dataclass(frozen=True)
class PegGains:
    """Tuning of the controller for one site.

    Attributes:
        position_gain: Action per metre of position error.
        hover_m: Height of the peg's bottom above the hole's mouth while aligning.
        align_tolerance_m: Horizontal error of the peg's bottom below which it descends.
        insert_speed: Largest downward action while inserting (fraction of the site's speed).
        force_limit_n: Wrist force above which the insertion backs off and re-aligns.
        release_share: Share of the hole depth at which the peg is released.
        release_speed_mps: Tool speed below which suction is released.
        travel_m: Clearance of the peg's bottom above the fixtures while carrying.
        grasp_tolerance_m: Horizontal error over the peg's top below which the cup descends.
        average_readings: Average the hole's readings over the episode and the held peg's
            offset from the tool over the grasp; False acts on the latest readings (no lag,
            but every bit of sensor noise goes into the alignment).
        fingers: The home site grips with fingers, not suction: descend with the jaws open
            until the tool centre (between the fingertips) is `finger_depth_m` below the
            peg's top, close there and lift only once ``holding`` says the peg is gripped.
        finger_depth_m: How far below the peg's top the fingertips close: deep enough to
            hold it upright, shallow enough to stay above the hole's mouth when inserted.
    """

    position_gain: float = 10.0
    hover_m: float = 0.01
    align_tolerance_m: float = 0.0008
    insert_speed: float = 0.15
    force_limit_n: float = 30.0
    release_share: float = 0.95
    release_speed_mps: float = 0.01
    travel_m: float = 0.04
    grasp_tolerance_m: float = 0.004
    average_readings: bool = True
    fingers: bool = False
    finger_depth_m: float = 0.02


SITE_GAINS: dict[str, PegGains] = {
    # Loose fit with a chamfer, fast arm, exact sensors: the latest readings, align roughly, go
    # in quickly.
    "kr-changwon": PegGains(
        position_gain=8.0, align_tolerance_m=0.001, insert_speed=0.2, average_readings=False
    ),
    # 0.3 mm, no chamfer, heavy pin, slow control, exact sensors: align tightly on the latest
    # readings, insert gently.
    "jp-nagoya": PegGains(
        average_readings=False,
        position_gain=12.0,
        align_tolerance_m=0.0002,
        insert_speed=0.1,
        force_limit_n=60.0,
        travel_m=0.025,
    ),
    # Noisy sensors and a moving hole: average, align within the chamfer's reach.
    "us-austin": PegGains(position_gain=8.0, align_tolerance_m=0.0008, insert_speed=0.15),
}


@dataclass
class _Session:
    """What the controller remembers within one episode."""

    hole_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    hole_n: int = 0
    offset_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    offset_n: int = 0
    released: bool = False
    lifted: bool = False
    backoff: int = 0


class ScriptedPegController:
    """The scripted peg-in-hole controller; satisfies the SDK `Policy` protocol.

    Args:
        home_site: Site the gains were tuned for (goes into the policy id).
        gains: The tuning; defaults to `SITE_GAINS[home_site]`.

    Raises:
        ValueError: If no gains are given and none are tuned for ``home_site``.
    """

    def __init__(self, home_site: str, gains: PegGains | None = None) -> None:
        self.home_site = home_site
        self.gains = tuned_gains(SITE_GAINS, home_site, gains)
        self._sessions: dict[str, _Session] = {}

    def spec(self) -> PolicySpec:
        """Identity and the spaces this controller reads and writes."""
        kind = "peg-fingers" if self.gains.fingers else "peg"
        return controller_spec(kind, self.home_site, OBSERVATION_FIELDS)

    def reset(self, session: SessionInfo) -> None:
        """Forget the session's averages: a new episode (the hole may have moved)."""
        self._sessions[session.session_id] = _Session()

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action from the observation fields."""
        state = self._sessions.setdefault(session.session_id, _Session())
        return decide(self.gains, state, observation)

    def close(self) -> None:
        """Drop every session's state."""
        self._sessions.clear()


def with_gains(controller: ScriptedPegController, **changes: Any) -> ScriptedPegController:
    """A copy of `controller` with some gains changed (for tuning sweeps)."""
    return ScriptedPegController(controller.home_site, replace(controller.gains, **changes))


def decide(g: PegGains, s: _Session, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The control law: a tool target and suction state, then a P action (speed-limited)."""
    ee = np.asarray(obs["ee_pos"], dtype=np.float64)
    if not g.average_readings:  # keep only the latest reading
        s.hole_sum[:], s.hole_n = 0.0, 0
    s.hole_sum += obs["hole_pos"]
    s.hole_n += 1
    mouth = s.hole_sum / s.hole_n
    half = float(obs["peg_size"][2]) / 2.0
    if s.released:
        target, suction, limit = np.array([ee[0], ee[1], mouth[2] + 0.08]), False, 0.1
        if np.linalg.norm(obs["ee_vel"]) > 0.05:  # let the peg settle before moving away
            target = ee
    elif obs["holding"][0] > 0.5:
        target, suction, limit = _insert(g, s, obs, ee, mouth, half)
    else:
        s.offset_sum[:], s.offset_n, s.lifted = 0.0, 0, False
        if g.fingers:
            target, suction, limit = *_finger_pick(g, obs, ee, half), 1.0
        else:
            target, suction, limit = _pick(g, obs, ee, half), True, 1.0
    move = np.clip(g.position_gain * (target - ee), -1.0, 1.0)
    move[2] = max(move[2], -limit)
    action = np.empty(4, dtype=np.float32)
    action[:3] = move
    action[3] = 1.0 if suction else -1.0
    return action


def _pick(g: PegGains, obs: Mapping[str, np.ndarray], ee: np.ndarray, half: float) -> np.ndarray:
    peg = np.asarray(obs["peg_pos"], dtype=np.float64)
    top = peg[2] + half
    aligned = np.hypot(*(peg[:2] - ee[:2])) < g.grasp_tolerance_m
    z = top - 0.004 if aligned else top + g.travel_m
    return np.array([peg[0], peg[1], z])


def _finger_pick(
    g: PegGains, obs: Mapping[str, np.ndarray], ee: np.ndarray, half: float
) -> tuple[np.ndarray, bool]:
    """Straddle the peg with open jaws, close at `PegGains.finger_depth_m`, hold until gripped.

    Once the tool is below the peg's top it keeps descending while roughly aligned (twice
    the tolerance), so sensor noise does not pull it up and down; jaws that closed on nothing
    leave ``holding`` at 0 with the tool down: they open when it rises to try again.
    """
    peg = np.asarray(obs["peg_pos"], dtype=np.float64)
    top = peg[2] + half
    grasp_z = top - min(g.finger_depth_m, 1.5 * half)
    error = float(np.hypot(*(peg[:2] - ee[:2])))
    low = ee[2] < top
    if error < g.grasp_tolerance_m or (low and error < 2.0 * g.grasp_tolerance_m):
        closing = obs["gripper"][0] > 0.5 or ee[2] - grasp_z < 0.003
        return np.array([peg[0], peg[1], grasp_z - 0.003]), closing
    if low:  # beside the peg and low: rise before closing in
        return np.array([ee[0], ee[1], top + g.travel_m]), False
    return np.array([peg[0], peg[1], top + g.travel_m]), False


def _insert(
    g: PegGains,
    s: _Session,
    obs: Mapping[str, np.ndarray],
    ee: np.ndarray,
    mouth: np.ndarray,
    half: float,
) -> tuple[np.ndarray, bool, float]:
    """Lift, carry, align, descend under a force limit, release: (target, suction, limit)."""
    if not g.average_readings:
        s.offset_sum[:], s.offset_n = 0.0, 0
    s.offset_sum += np.asarray(obs["peg_pos"], dtype=np.float64) - ee
    s.offset_n += 1
    offset = s.offset_sum / s.offset_n  # peg centre minus tool
    bottom = ee + offset - np.array([0.0, 0.0, half])
    depth_goal = float(obs["hole_size"][2])
    error_xy = mouth[:2] - bottom[:2]
    over_hole = float(np.hypot(*error_xy)) < 0.01
    if not s.lifted:  # straight up off the nest first
        s.lifted = bottom[2] > mouth[2] + g.travel_m - 0.005
        return np.array([ee[0], ee[1], ee[2] + 0.05]), True, 1.0
    xy = ee[:2] + error_xy
    if not over_hole and bottom[2] > mouth[2] - 0.002:  # carry at travel height
        return np.array([xy[0], xy[1], mouth[2] + g.travel_m + half - offset[2]]), True, 1.0
    depth = mouth[2] - bottom[2]
    speed = float(np.linalg.norm(obs["ee_vel"]))
    if depth >= g.release_share * depth_goal and speed < g.release_speed_mps:
        s.released = True
        return ee, False, 0.0
    force = float(np.linalg.norm(obs["wrist_force"]))
    if force > g.force_limit_n and depth < g.release_share * depth_goal:
        s.backoff = 5  # control steps of lifting off the jam
    if s.backoff > 0:
        s.backoff -= 1
        return np.array([xy[0], xy[1], ee[2] + 0.005]), True, 1.0
    aligned = float(np.hypot(*error_xy)) < g.align_tolerance_m or depth > 0.002
    if not aligned:
        z = mouth[2] + g.hover_m - (bottom[2] - ee[2])
        return np.array([xy[0], xy[1], max(z, ee[2]) if depth > 0 else z]), True, 1.0
    goal = ee[2] - (depth_goal - depth) - 0.003  # push a little past the floor
    return np.array([xy[0], xy[1], goal]), True, g.insert_speed


def scripted_peg_policy(site_id: str, fingers: bool = False) -> ScriptedPegController:
    """The peg-in-hole controller tuned for `site_id` (the in-process policy configs' factory).

    ``fingers``: the site grips with fingers (`PegGains.fingers`); a policy config sets it
    with ``factory.fingers: true``.
    """
    if not fingers:
        return ScriptedPegController(site_id)
    gains = tuned_gains(SITE_GAINS, site_id, None)
    return ScriptedPegController(site_id, replace(gains, fingers=True))
