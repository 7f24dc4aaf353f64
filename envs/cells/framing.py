"""The cell camera: a view computed from the layout's bounds, so the whole cell is in frame.

`cell_bounds` collects the points a cell camera must show: the corners of every station but
the cameras (a walkway reaching up to the tallest co-worker who walks it) and the robot's
envelope (its base footprint, a ring of its horizontal reach at the floor and a ring of half
that at the highest tool target the controller allows, plus the wrist above it). `fit_camera`
then looks at those points from a given direction and backs off until every point projects
inside the image with a margin, for the image's aspect ratio. Both are pure functions of the
factory data, so the view, like the frames, is the same on every run.
"""

from __future__ import annotations

import math

import numpy as np

from envs.factory.schema import SiteSpec
from envs.render import Camera, Vec3
from envs.robots.models import MAX_HEIGHT_ABOVE_BASE_M, ROBOT_MODELS

#: The cell camera sits this way from the cell's centre (every site alike, so their frames
#: compare; a camera station of the site films from where the factory mounts it instead).
DEFAULT_DIRECTION: Vec3 = (1.4, -0.9, 1.3)
#: Share of each half-image kept free around the cell.
MARGIN = 0.03
#: Points on each ring of the robot's reach.
_RING_POINTS = 16
_CLEARANCE_M = 0.05  # the near plane and a margin in depth


def cell_bounds(site: SiteSpec) -> np.ndarray:
    """Points (N x 3, world frame) that a view of the whole cell must show."""
    points = [_station_corners(site, s.station_id) for s in site.stations if _framed(s.kind)]
    points += _walkers(site)
    points.append(_robot_envelope(site))
    return np.concatenate(points)


def _framed(kind: str) -> bool:
    return kind not in ("camera", "robot")


def _station_corners(site: SiteSpec, station_id: str, top_up_m: float = 0.0) -> np.ndarray:
    station = site.station(station_id)
    position, rpy = site.world_pose(station_id)
    half = np.array([station.size_x, station.size_y, station.size_z]) / 2.0
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    local = signs * half
    local[:, 2] = np.where(signs[:, 2] > 0, local[:, 2] + top_up_m, local[:, 2])
    return local @ rotation(rpy).T + np.asarray(position, dtype=np.float64)


def _walkers(site: SiteSpec) -> list[np.ndarray]:
    """Each walkway with a co-worker, up to the tallest person who walks it."""
    tallest: dict[str, float] = {}
    for person in site.site.coworkers:
        tallest[person.walkway] = max(tallest.get(person.walkway, 0.0), person.height_m)
    return [_station_corners(site, walkway, height) for walkway, height in tallest.items()]


def _robot_envelope(site: SiteSpec) -> np.ndarray:
    """The base footprint and two rings of the tool's reach: at the floor and the ceiling."""
    robot = site.site.robot
    info = ROBOT_MODELS[robot.model]
    base, (_, _, yaw) = site.world_pose(robot.station_id)
    bx, by, bz = (float(v) for v in base)
    (x0, y0, z0), (x1, y1, z1) = info.footprint
    foot = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], float)
    foot = foot @ rotation((0.0, 0.0, yaw)).T + (bx, by, bz)
    # The wrist sits above the tool: the tool offset, at least 0.1 m.
    top = bz + MAX_HEIGHT_ABOVE_BASE_M + max(0.1, float(np.linalg.norm(info.tool_offset)))
    angles = np.arange(_RING_POINTS) * (2.0 * math.pi / _RING_POINTS)
    # A polygon's corners at radius r / cos(pi/n) keep the whole circle inside it. The tool
    # reaches its full radius near the floor, half of it at the ceiling (the links are not
    # long enough for both at once).
    reach = info.reach_m / math.cos(math.pi / _RING_POINTS)
    rings = [
        np.column_stack([bx + r * np.cos(angles), by + r * np.sin(angles), np.full(len(angles), z)])
        for r, z in ((reach, min(0.0, bz)), (reach / 2.0, top))
    ]
    return np.concatenate([foot, *rings])


def rotation(rpy: tuple[float, float, float]) -> np.ndarray:
    """Rotation matrix of roll-pitch-yaw (x, then y, then z: PyBullet's Euler convention)."""
    roll, pitch, yaw = (float(a) for a in rpy)
    cr, sr, cp, sp, cy, sy = (
        math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw),
        math.sin(yaw),
    )  # fmt: skip
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


def view_direction() -> np.ndarray:
    """Unit vector the cell camera looks along (`DEFAULT_DIRECTION`, reversed)."""
    offset = np.asarray(DEFAULT_DIRECTION, dtype=np.float64)
    return -offset / np.linalg.norm(offset)


def fit_camera(
    points: np.ndarray,
    forward: np.ndarray,
    aspect: float,
    fov_deg: float = 60.0,
    margin: float = MARGIN,
) -> Camera:
    """A camera looking along ``forward`` that shows every point with ``margin`` to spare.

    The target starts at the points' box centre and moves (three rounds) to centre their
    image; each round the camera backs off just far enough for every point to project within
    ``1 - margin`` of the image's half-width and half-height.

    Args:
        points: N x 3 world points.
        forward: Viewing direction (need not be unit length; not vertical).
        aspect: Image width / height.
        fov_deg: Vertical field of view, as `Camera` and the renderer use it.
        margin: Share of each half-image to keep free.
    """
    points = np.asarray(points, dtype=np.float64)
    f = np.asarray(forward, dtype=np.float64) / np.linalg.norm(forward)
    s = np.cross(f, (0.0, 0.0, 1.0))
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    ty = math.tan(math.radians(fov_deg) / 2.0) * (1.0 - margin)
    tx = ty * aspect
    target = (points.min(axis=0) + points.max(axis=0)) / 2.0
    for _ in range(3):
        distance, x, y = _back_off(points - target, (s, u, f), tx, ty)
        target = target + s * (x.min() + x.max()) / 2.0 * tx * distance
        target = target + u * (y.min() + y.max()) / 2.0 * ty * distance
    distance, _, _ = _back_off(points - target, (s, u, f), tx, ty)
    far = max(10.0, distance + float(np.max((points - target) @ f)) + 1.0)
    eye = target - distance * f
    return Camera(eye=_vec(eye), target=_vec(target), fov_deg=fov_deg, far_m=float(math.ceil(far)))


def _back_off(
    q: np.ndarray, axes: tuple[np.ndarray, np.ndarray, np.ndarray], tx: float, ty: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """The least distance from the target that frames offsets ``q``, and their image (x, y).

    Image coordinates are in [-1, 1] inside the image's ``1 - margin``.
    """
    s, u, f = axes
    qs, qu, qf = q @ s, q @ u, q @ f
    distance = float(
        max(np.max(np.abs(qs) / tx - qf), np.max(np.abs(qu) / ty - qf), np.max(-qf) + _CLEARANCE_M)
    )
    depth = distance + qf
    return distance, qs / depth / tx, qu / depth / ty


def _vec(v: np.ndarray) -> Vec3:
    return (float(v[0]), float(v[1]), float(v[2]))
