"""The only module that imports pybullet: one `Sim` owns one physics client.

Everything else in `envs` talks to the engine through these helpers, which take and return
plain tuples and numpy arrays. The settings chosen in `Sim.__init__` (explicit gravity, a fixed
time step, deterministic overlapping pairs, no sleeping) make the same seed and actions give
bit-identical trajectories across processes and after `reset_world`.

Calls go through a `_BoundClient`: pybullet's functions bound to this client's id once each
(pybullet_utils' ``BulletClient`` builds a new ``functools.partial`` after an ``inspect`` check
on every attribute access, a few percent of an env step, and its ``connect(options="")`` prints
``argv[0]=`` into every log). Rendering lives in `envs.render`, which gets the client from here.
"""

from __future__ import annotations

import functools
import inspect
import os
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybullet
import pybullet_data

from envs import _bullet_file
from envs import render as _render
from envs.errors import SimulationError
from envs.render import RENDERERS, Camera

__all__ = ["RENDERERS", "Attachment", "Camera", "Color", "Quat", "Shapes", "Sim", "Vec3"]

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Color = tuple[float, float, float, float]
Shapes = tuple[int, int]  # (collision shape, visual shape)
_GREY: Color = (0.6, 0.6, 0.6, 1.0)


@dataclass(frozen=True)
class Attachment:
    """The exact arguments of a weld made by `Sim.attach`, so a restored world can remake it.

    Frames are relative to the parent link's centre of mass, as `createConstraint` takes them.
    """

    parent: int
    parent_link: int
    child: int
    position: Vec3
    orientation: Quat
    max_force: float


class _BoundClient:
    """pybullet's module functions bound to one physics client id, each looked up once.

    Attributes are cached on first use, so a call costs an attribute read and the call. Like
    ``BulletClient``, the client is disconnected when this object is garbage-collected in the
    process that connected it (an env that was never closed does not leak its physics server).
    """

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self._finalizer = weakref.finalize(self, _disconnect, client_id, os.getpid())

    def disconnect(self) -> None:
        """Disconnect the client, once.

        pybullet reuses client ids: a second call must not close the client that got this id.
        """
        self._finalizer()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(pybullet, name)
        if inspect.isbuiltin(attribute):
            attribute = functools.partial(attribute, physicsClientId=self.client_id)
        setattr(self, name, attribute)
        return attribute


def _disconnect(client_id: int, pid: int) -> None:
    if os.getpid() != pid:  # a forked child must not close its parent's client
        return
    try:
        pybullet.disconnect(physicsClientId=client_id)
    except pybullet.error:  # already disconnected (Sim.close)
        pass


class Sim:
    """A PyBullet client in DIRECT mode (or GUI) with the testbed's deterministic settings.

    Args:
        time_step_s: Physics time step.
        gravity: Gravity vector (m/s^2); PyBullet's default is zero, so it is always set.
        solver_iterations: Constraint-solver iterations per step.
        gui: Open the PyBullet GUI (needs a display) instead of running headless.
    """

    def __init__(
        self,
        time_step_s: float,
        gravity: Vec3,
        solver_iterations: int = 50,
        gui: bool = False,
    ) -> None:
        mode = pybullet.GUI if gui else pybullet.DIRECT
        kind = "the GUI" if gui else "a DIRECT physics server"
        try:
            client_id = pybullet.connect(mode)
        except pybullet.error as exc:  # e.g. a second GUI in one process, or no display
            raise SimulationError(f"cannot connect to {kind}: {exc}") from exc
        if client_id < 0:
            raise SimulationError(f"cannot connect to {kind}: pybullet.connect returned -1")
        #: The client every call goes through. Benchmarks swap in a proxy that records the
        #: calls (``testbed bench``); anything else uses the helpers.
        self.client: Any = _BoundClient(client_id)
        self.client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.time_step_s = time_step_s
        self._gravity = gravity
        self._solver_iterations = solver_iterations
        self._attachments: dict[int, Attachment] = {}
        self._egl_plugin: int | None = None
        self.configure()

    # ------------------------------------------------------------------ world lifecycle

    def configure(self) -> None:
        """Apply the deterministic engine settings (also after `reset_world`)."""
        c = self.client
        c.setPhysicsEngineParameter(
            fixedTimeStep=self.time_step_s,
            numSolverIterations=self._solver_iterations,
            deterministicOverlappingPairs=1,
            numSubSteps=0,
        )
        c.setGravity(*self._gravity)

    def reset_world(self) -> None:
        """Remove every body and constraint, then re-apply the engine settings."""
        self.client.resetSimulation()
        self._attachments.clear()
        self.configure()

    def close(self) -> None:
        """Disconnect the client (once; closing again does nothing); the Sim is unusable after."""
        self.client.disconnect()

    def step(self) -> None:
        """Advance physics by one time step."""
        self.client.stepSimulation()

    def advance(
        self,
        substeps: int,
        carried: Sequence[int],
        velocity: Vec3,
        body: int,
        joints: Sequence[int],
    ) -> float:
        """Step physics ``substeps`` times, carrying bodies and metering a robot's joint work.

        Before every step the ``carried`` bodies get the linear ``velocity`` (a conveyor belt
        moves parts this way); after it, the work of ``body``'s ``joints`` is summed. One call
        per control step keeps the per-physics-step cost to the PyBullet calls themselves.

        Returns:
            Sum over steps and joints of ``|applied torque x joint velocity| x time step`` (J).
        """
        c = self.client
        step, set_velocity, joint_states = c.stepSimulation, c.resetBaseVelocity, c.getJointStates
        power = 0.0
        for _ in range(substeps):
            for carried_body in carried:
                set_velocity(carried_body, velocity)
            step()
            for state in joint_states(body, joints):
                power += abs(state[3] * state[1])
        return power * self.time_step_s

    def restore_clean(self, state_id: int) -> None:
        """Restore a `save_state` snapshot with no trace of what ran since it was taken.

        A plain restore keeps contact pairs made since the save (a part that lay on the belt),
        whose warm-started impulses would leak into the next episode; restore, one step with
        the world as saved, restore again drops them. Envs start every episode this way, so an
        episode depends on its seed only.
        """
        self.restore_state(state_id)
        self.step()
        self.restore_state(state_id)

    def save_state(self) -> int:
        """Snapshot the world in memory; returns the state id."""
        return self.client.saveState()

    def restore_state(self, state_id: int) -> None:
        """Restore a snapshot taken with `save_state`."""
        self.client.restoreState(stateId=state_id)

    def state_bytes(self) -> bytes:
        """The world state as the bytes of a ``.bullet`` file.

        Unlike `save_state` (an id valid only in this process) the bytes can be stored and
        restored elsewhere with `restore_state_bytes`, into a world built the same way.
        """
        with tempfile.TemporaryDirectory(prefix="testbed-sim-") as folder:
            path = os.path.join(folder, "state.bullet")
            self.client.saveBullet(path)
            with open(path, "rb") as handle:
                return handle.read()

    def restore_state_bytes(self, blob: bytes) -> None:
        """Restore body and joint states and contacts from `state_bytes` output.

        The world must hold the same bodies, created in the same order (same ids). Constraints
        are not part of the state: remake them with `attach_exact` first.

        The world may have another history than the one saved (it removed and re-made more
        bodies, or fewer): PyBullet matches saved contacts to the world's by broadphase ids,
        which count every body ever added, so the saved ids are first translated to this
        world's (see `envs._bullet_file`). Without that, contacts restore cold and the
        trajectory drifts from the first step.

        Raises:
            SimulationError: If PyBullet cannot read the state, or it holds other bodies.
        """
        try:
            ids = _bullet_file.collision_object_ids(self.state_bytes())
            blob = _bullet_file.with_collision_object_ids(blob, ids)
        except ValueError as exc:
            raise SimulationError(
                f"cannot restore the simulator state ({len(blob)} bytes of .bullet data) "
                f"into this world: {exc}"
            ) from exc
        with tempfile.TemporaryDirectory(prefix="testbed-sim-") as folder:
            path = os.path.join(folder, "state.bullet")
            with open(path, "wb") as handle:
                handle.write(blob)
            try:
                self.client.restoreState(fileName=path)
            except pybullet.error as exc:
                raise SimulationError(
                    f"cannot restore the simulator state ({len(blob)} bytes of .bullet data): {exc}"
                ) from exc

    # ------------------------------------------------------------------ body creation

    def load_urdf(self, path: str, position: Vec3, orientation: Quat, fixed: bool = True) -> int:
        """Load a URDF from pybullet_data or an absolute path."""
        try:
            return self.client.loadURDF(
                path,
                basePosition=position,
                baseOrientation=orientation,
                useFixedBase=fixed,
                flags=pybullet.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT
                | pybullet.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
            )
        except pybullet.error as exc:
            raise SimulationError(f"cannot load URDF {path!r}: {exc}") from exc

    def load_sdf(self, path: str) -> tuple[int, ...]:
        """Load an SDF world file; returns every body it created."""
        try:
            return tuple(self.client.loadSDF(path))
        except pybullet.error as exc:
            raise SimulationError(f"cannot load SDF {path!r}: {exc}") from exc

    def box_shape(self, half_extents: Vec3, color: Color = _GREY) -> Shapes:
        """Collision and visual shapes of a box, for `create_body` (shareable by many bodies)."""
        c = self.client
        shape = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half_extents)
        visual = c.createVisualShape(pybullet.GEOM_BOX, halfExtents=half_extents, rgbaColor=color)
        return shape, visual

    def cylinder_shape(self, radius: float, height: float, color: Color = _GREY) -> Shapes:
        """Collision and visual shapes of an upright cylinder, for `create_body`."""
        c = self.client
        shape = c.createCollisionShape(pybullet.GEOM_CYLINDER, radius=radius, height=height)
        visual = c.createVisualShape(
            pybullet.GEOM_CYLINDER, radius=radius, length=height, rgbaColor=color
        )
        return shape, visual

    def mesh_shape(self, path: str, scale: Vec3, color: Color) -> Shapes:
        """Shapes from a mesh file (OBJ or STL; collision uses its convex hull).

        Raises:
            SimulationError: If the mesh cannot be loaded.
        """
        c = self.client
        try:
            shape = c.createCollisionShape(pybullet.GEOM_MESH, fileName=path, meshScale=scale)
            visual = c.createVisualShape(
                pybullet.GEOM_MESH, fileName=path, meshScale=scale, rgbaColor=color
            )
        except pybullet.error as exc:
            raise SimulationError(f"cannot load mesh {path!r}: {exc}") from exc
        return shape, visual

    def create_body(
        self,
        shapes: Shapes,
        position: Vec3,
        orientation: Quat = (0.0, 0.0, 0.0, 1.0),
        mass: float = 0.0,
        friction: float | None = None,
    ) -> int:
        """Create a body from shapes made by `box_shape`, `cylinder_shape` or `mesh_shape`."""
        return self._finish_body(*shapes, mass, position, orientation, friction)

    def remove_body(self, body: int) -> None:
        """Remove a body from the world (its shapes stay, for the next body that uses them)."""
        self.client.removeBody(body)

    def create_box(
        self,
        half_extents: Vec3,
        position: Vec3,
        orientation: Quat = (0.0, 0.0, 0.0, 1.0),
        mass: float = 0.0,
        color: Color = _GREY,
        friction: float | None = None,
    ) -> int:
        """Create a box body (static when `mass` is 0)."""
        shapes = self.box_shape(half_extents, color)
        return self.create_body(shapes, position, orientation, mass, friction)

    def create_open_box(
        self,
        size: Vec3,
        position: Vec3,
        orientation: Quat,
        wall: float,
        color: tuple[float, float, float, float],
    ) -> tuple[int, ...]:
        """Create a static open-top box (a bin): a floor and four walls; returns their bodies.

        Five bodies, not one compound shape: an object touching two boxes of one compound body
        gets two contact manifolds for the same pair of collision objects, which the solver
        orders by the history of the world and a saved state cannot tell apart (PyBullet
        restores both from one), so a restored snapshot would drift from the original.
        """
        sx, sy, sz = (s / 2.0 for s in size)
        half = [
            (sx, sy, wall / 2.0),
            (wall / 2.0, sy, sz),
            (wall / 2.0, sy, sz),
            (sx, wall / 2.0, sz),
            (sx, wall / 2.0, sz),
        ]
        frames = [
            (0.0, 0.0, -sz + wall / 2.0),
            (-sx + wall / 2.0, 0.0, 0.0),
            (sx - wall / 2.0, 0.0, 0.0),
            (0.0, -sy + wall / 2.0, 0.0),
            (0.0, sy - wall / 2.0, 0.0),
        ]
        bodies = []
        for half_extents, frame in zip(half, frames, strict=True):
            at, _ = self.client.multiplyTransforms(position, orientation, frame, (0, 0, 0, 1))
            bodies.append(self.create_box(half_extents, at, orientation, 0.0, color))
        return tuple(bodies)

    def _finish_body(
        self,
        shape: int,
        visual: int,
        mass: float,
        position: Vec3,
        orientation: Quat,
        friction: float | None,
    ) -> int:
        body = self.client.createMultiBody(
            baseMass=mass,
            baseCollisionShapeIndex=shape,
            baseVisualShapeIndex=visual,
            basePosition=position,
            baseOrientation=orientation,
        )
        self.client.changeDynamics(
            body, -1, activationState=pybullet.ACTIVATION_STATE_DISABLE_SLEEPING
        )
        if friction is not None:
            self.client.changeDynamics(body, -1, lateralFriction=friction)
        return body

    def create_compound(self, boxes: Sequence[tuple[Vec3, Vec3, Color]], position: Vec3) -> int:
        """A static (kinematic) body of boxes rigidly joined: the first box is the base.

        Args:
            boxes: ``(half_extents, offset from the base centre, colour)`` per box; link i of
                the body is box i + 1 (contacts and closest points name it by that index).
            position: Where the base centre starts.
        """
        shapes = [self.box_shape(half, color) for half, _, color in boxes]
        (base_shape, base_visual), links = shapes[0], shapes[1:]
        count = len(links)
        return int(
            self.client.createMultiBody(
                baseMass=0.0,
                baseCollisionShapeIndex=base_shape,
                baseVisualShapeIndex=base_visual,
                basePosition=position,
                linkMasses=[0.0] * count,
                linkCollisionShapeIndices=[s for s, _ in links],
                linkVisualShapeIndices=[v for _, v in links],
                linkPositions=[offset for _, offset, _ in boxes[1:]],
                linkOrientations=[(0.0, 0.0, 0.0, 1.0)] * count,
                linkInertialFramePositions=[(0.0, 0.0, 0.0)] * count,
                linkInertialFrameOrientations=[(0.0, 0.0, 0.0, 1.0)] * count,
                linkParentIndices=[0] * count,
                linkJointTypes=[pybullet.JOINT_FIXED] * count,
                linkJointAxis=[(0.0, 0.0, 1.0)] * count,
            )
        )

    def closest_points(self, body_a: int, body_b: int, within_m: float) -> list[tuple]:
        """Closest points between two bodies up to ``within_m`` apart.

        PyBullet's tuples: index 4 is body_b's link, 8 the distance (negative on overlap).
        """
        return list(self.client.getClosestPoints(bodyA=body_a, bodyB=body_b, distance=within_m))

    # ------------------------------------------------------------------ bodies and joints

    def set_dynamics(self, body: int, link: int = -1, **kwargs: float) -> None:
        """Forward keyword dynamics settings (friction, damping ...) to PyBullet."""
        self.client.changeDynamics(body, link, **kwargs)

    def num_joints(self, body: int) -> int:
        """Number of joints of a body."""
        return self.client.getNumJoints(body)

    def joint_info(self, body: int, joint: int) -> tuple:
        """PyBullet's joint info tuple."""
        return self.client.getJointInfo(body, joint)

    def reset_joint(self, body: int, joint: int, angle: float) -> None:
        """Teleport one joint to an angle with zero velocity."""
        self.client.resetJointState(body, joint, angle, 0.0)

    def position_control(
        self,
        body: int,
        joints: Sequence[int],
        targets: Sequence[float],
        forces: Sequence[float],
        position_gain: float,
        velocity_gain: float,
    ) -> None:
        """Drive joints to target positions with PD motors limited by `forces`."""
        n = len(joints)
        self.client.setJointMotorControlArray(
            body,
            joints,
            pybullet.POSITION_CONTROL,
            targetPositions=targets,
            forces=forces,
            positionGains=[position_gain] * n,
            velocityGains=[velocity_gain] * n,
        )

    def link_pose_velocity(self, body: int, link: int) -> tuple[Vec3, Quat, Vec3]:
        """World position, orientation and linear velocity of a link's URDF frame."""
        state = self.client.getLinkState(
            body, link, computeLinkVelocity=1, computeForwardKinematics=1
        )
        return state[4], state[5], state[6]

    def inverse_kinematics(
        self,
        body: int,
        link: int,
        position: Vec3,
        orientation: Quat,
        iterations: int,
        residual: float,
        null_space: Mapping[str, Any] | None = None,
    ) -> tuple[float, ...]:
        """Joint positions (one per movable joint) that put `link` at the target pose.

        ``null_space``: null-space settings prepared once with `null_space_options` (a
        controller calls this every step); None solves without.
        """
        return self.client.calculateInverseKinematics(
            body,
            link,
            position,
            orientation,
            maxNumIterations=iterations,
            residualThreshold=residual,
            **(null_space or {}),
        )

    @staticmethod
    def null_space_options(
        rest_pose: Sequence[float], lower: Sequence[float], upper: Sequence[float]
    ) -> dict[str, list[float]]:
        """Null-space IK settings (limits, ranges, rest pose) for `inverse_kinematics`."""
        return {
            "lowerLimits": list(lower),
            "upperLimits": list(upper),
            "jointRanges": [u - lo for lo, u in zip(lower, upper, strict=True)],
            "restPoses": list(rest_pose),
        }

    def base_pose(self, body: int) -> tuple[Vec3, Quat]:
        """World position and orientation of a body's base."""
        return self.client.getBasePositionAndOrientation(body)

    def base_velocity(self, body: int) -> tuple[Vec3, Vec3]:
        """Linear and angular velocity of a body's base."""
        return self.client.getBaseVelocity(body)

    def reset_base(
        self, body: int, position: Vec3, orientation: Quat = (0.0, 0.0, 0.0, 1.0)
    ) -> None:
        """Teleport a body's base and zero its velocity."""
        self.client.resetBasePositionAndOrientation(body, position, orientation)
        self.client.resetBaseVelocity(body, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))

    def set_color(
        self, body: int, color: tuple[float, float, float, float], link: int = -1
    ) -> None:
        """Recolour one link of a body."""
        self.client.changeVisualShape(body, link, rgbaColor=color)

    # ------------------------------------------------------------------ contacts and grasp

    def contacts(self, body_a: int, body_b: int | None = None) -> list[tuple]:
        """Contact points of `body_a` (with `body_b` only, if given)."""
        if body_b is None:
            return list(self.client.getContactPoints(bodyA=body_a))
        return list(self.client.getContactPoints(bodyA=body_a, bodyB=body_b))

    def total_normal_force(self, body_a: int, body_b: int | None = None) -> float:
        """Sum of contact normal forces on `body_a` (N)."""
        return float(sum(point[9] for point in self.contacts(body_a, body_b)))

    def attach(self, parent: int, parent_link: int, child: int, max_force: float) -> int:
        """Weld `child` to a link of `parent` at their current relative pose.

        `createConstraint` frames are relative to the link's centre of mass, so the child's pose
        is expressed in the parent link's inertial frame.
        """
        c = self.client
        link_state = c.getLinkState(parent, parent_link, computeForwardKinematics=1)
        com_pos, com_orn = link_state[0], link_state[1]
        child_pos, child_orn = c.getBasePositionAndOrientation(child)
        inv_pos, inv_orn = c.invertTransform(com_pos, com_orn)
        rel_pos, rel_orn = c.multiplyTransforms(inv_pos, inv_orn, child_pos, child_orn)
        return self.attach_exact(
            Attachment(parent, parent_link, child, rel_pos, rel_orn, max_force)
        )

    def attach_exact(self, attachment: Attachment) -> int:
        """Make a weld with exactly the frames in ``attachment`` (a restored world re-makes one)."""
        c = self.client
        constraint = c.createConstraint(
            attachment.parent,
            attachment.parent_link,
            attachment.child,
            -1,
            pybullet.JOINT_FIXED,
            (0.0, 0.0, 0.0),
            attachment.position,
            (0.0, 0.0, 0.0),
            parentFrameOrientation=attachment.orientation,
        )
        c.changeConstraint(constraint, maxForce=attachment.max_force)
        self._attachments[constraint] = attachment
        return constraint

    def attachment(self, constraint: int) -> Attachment:
        """The arguments a constraint made by `attach` or `attach_exact` was created with."""
        return self._attachments[constraint]

    def gear(self, body: int, link_a: int, link_b: int, ratio: float, max_force: float) -> int:
        """Couple two joints of ``body`` (by their child links): ``q_a = -ratio * q_b`` held.

        The Panda's fingers stay centred on a part this way (bullet3#2101); a gear is part of
        the world as built, like a robot's joints, not of the saved state.
        """
        c = self.client
        constraint = c.createConstraint(
            body,
            link_a,
            body,
            link_b,
            jointType=pybullet.JOINT_GEAR,
            jointAxis=(1.0, 0.0, 0.0),
            parentFramePosition=(0.0, 0.0, 0.0),
            childFramePosition=(0.0, 0.0, 0.0),
        )
        c.changeConstraint(constraint, gearRatio=ratio, erp=0.1, maxForce=max_force)
        return int(constraint)

    def detach(self, constraint: int) -> None:
        """Remove a constraint created by `attach`."""
        self.client.removeConstraint(constraint)
        self._attachments.pop(constraint, None)

    # ------------------------------------------------------------------ rendering

    def render(self, camera: Camera, width: int, height: int, renderer: str = "tiny") -> np.ndarray:
        """An RGB frame (height x width x 3, uint8) from `camera` (see `envs.render.frame`).

        Args:
            camera: Where the camera is and what it looks at.
            width: Image width in pixels.
            height: Image height in pixels.
            renderer: ``"tiny"`` (CPU TinyRenderer, always available), ``"egl"`` (headless
                OpenGL through PyBullet's EGL plugin, loaded on first use) or ``"opengl"``
                (the GUI's OpenGL context).

        Raises:
            SimulationError: If ``renderer`` is unknown, or EGL is unavailable.
        """
        _render.check_renderer(renderer)
        if renderer == "egl":
            self.enable_egl()
        return _render.frame(self.client, camera, width, height, renderer)

    def render_depth(
        self, camera: Camera, width: int, height: int, renderer: str = "tiny"
    ) -> tuple[np.ndarray, np.ndarray]:
        """An RGB frame and its depth image in metres (see `envs.render.frame_depth`).

        Raises:
            SimulationError: If ``renderer`` is unknown, or EGL is unavailable.
        """
        _render.check_renderer(renderer)
        if renderer == "egl":
            self.enable_egl()
        return _render.frame_depth(self.client, camera, width, height, renderer)

    def enable_egl(self) -> None:
        """Load PyBullet's EGL renderer plugin (headless OpenGL; GPU or Mesa's llvmpipe).

        Raises:
            SimulationError: If the plugin is missing or EGL cannot create a context.
        """
        if self._egl_plugin is None:
            self._egl_plugin = _render.load_egl_plugin(self.client)

    @staticmethod
    def quat_from_euler(rpy: Vec3) -> Quat:
        """Quaternion (x, y, z, w) from roll-pitch-yaw."""
        return pybullet.getQuaternionFromEuler(rpy)
