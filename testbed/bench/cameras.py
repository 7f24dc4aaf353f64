"""Camera observations (issue 18): what a 96x96 RGB image in every observation costs.

Three kinds of figure, for ``testbed bench --only camera``:

* **Env steps/s with images vs without**, per site: ConveyorSort driven by the site's scripted
  controller, once plain and once with ``camera_obs`` 96x96 from the cell camera (the pinned
  renderer: TinyRenderer on the CPU), in alternating timed blocks (thread CPU time, medians).
  The figure the goal is about is the extra cost per step in env steps: ``(t_images - t_plain)
  / t_plain``; the goal is at most 1 (an image costs no more than one more env step).
* **Bytes per step on the wire**: the ``ActRequest`` of one real observation with the image as
  raw uint8 vs the same request with the image PNG-encoded (Pillow's default level), as
  ``RemotePolicy(image_encoding="png")`` sends it.
* **Policy link p50 with images**: unary ``Act`` round trips over 127.0.0.1 to a near-free
  policy that declares the image (raw, packed as negotiated; and PNG in the named form), vs
  the same policy without it (wall time; rounds alternate).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np

from testbed.bench.figures import SEED, BenchProfile, Figure, Progress, alternate, median
from testbed.link._observations import ImageEncoding
from testbed.link.client import RemotePolicy
from testbed.link.policy import Capabilities, Policy, PolicySpec, SessionInfo, spaces_to_specs

if TYPE_CHECKING:
    from testbed.bench.policy_link import ServerFactory

ENV = "Testbed/ConveyorSort-v0"
CAMERA = {"width": 96, "height": 96}
GOAL_EXTRA_STEPS = 1.0
#: Fewer steps than the env section's: every step with images renders a frame.
STEP_DIVISOR = 5
MAX_BLOCKS = 5


class ImagePolicy:
    """A near-free policy declaring the env's fields (with or without the image)."""

    def __init__(self, observation_space: Any, action_space: Any) -> None:
        observation, action = spaces_to_specs(observation_space, action_space)
        self._spec = PolicySpec("bench-camera", "1", observation, action, Capabilities())
        self._action = np.zeros(action.shape, np.float32)

    def spec(self) -> PolicySpec:
        """Identity and spaces."""
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        """Nothing to reset."""

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """The same zero action every step."""
        return self._action


def _block(env: gymnasium.Env, policy: Policy, steps: int) -> tuple[float, float]:
    """Thread CPU and wall seconds per step of ``steps`` steps driven by ``policy``."""
    session = SessionInfo("bench-camera", seed=SEED)
    observation, _ = env.reset(seed=SEED)
    policy.reset(session)
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(steps):
        observation, _, terminated, truncated, _ = env.step(policy.act(session, observation))
        if terminated or truncated:
            observation, _ = env.reset(seed=SEED)
    return (time.thread_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def _env_figure(
    site: str, profile: BenchProfile, policy_for_site: Callable[[str], Policy], progress: Progress
) -> Figure:
    steps = max(profile.env_steps // STEP_DIVISOR, 10)
    blocks = min(profile.env_blocks, MAX_BLOCKS)
    progress(f"camera: {site}, {blocks} blocks of {steps} steps with and without images")
    plain = gymnasium.make(ENV, site=site)
    pictured = gymnasium.make(ENV, site=site, camera_obs=CAMERA)
    policy = policy_for_site(site)
    walls: dict[str, list[float]] = {"plain": [], "images": []}

    def timed(env: gymnasium.Env, key: str) -> float:
        cpu, wall = _block(env, policy, steps)
        walls[key].append(wall)
        return cpu

    try:
        with_images, without = alternate(
            lambda: timed(pictured, "images"), lambda: timed(plain, "plain"), blocks
        )
        renderer = pictured.unwrapped.renderer  # type: ignore[attr-defined]
    finally:
        plain.close()
        pictured.close()
    t_images, t_plain = median(with_images), median(without)
    extra = (t_images - t_plain) / t_plain if t_plain > 0 else None
    return Figure(
        "camera", f"ConveyorSort {site}, 96x96 RGB ({renderer})", 1.0 / t_images, "steps/s",
        reference=1.0 / t_plain, reference_name="without images", ratio=extra,
        ratio_name="extra env steps per step", goal=f"<= {GOAL_EXTRA_STEPS:g}",
        met=None if extra is None else extra <= GOAL_EXTRA_STEPS,
        details={"steps": steps, "blocks": blocks, "cpu_ms_images": t_images * 1000,
                 "cpu_ms_plain": t_plain * 1000, "render_ms": (t_images - t_plain) * 1000,
                 "wall_ms_images": median(walls["images"]) * 1000,
                 "wall_ms_plain": median(walls["plain"]) * 1000},
    )  # fmt: skip


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (H x W x 3 uint8) as a PNG file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def wire_bytes(observation: Mapping[str, np.ndarray]) -> tuple[int, int, int]:
    """Bytes of an ``ActRequest`` of ``observation``: image raw, image PNG, and no image.

    The PNG request carries the PNG file as the image tensor's data (what a negotiated PNG
    encoding would send).
    """
    from protos.tensors import to_tensor
    from protos.v1 import policy_service_pb2 as pb

    def size(image_data: bytes | None) -> int:
        tensors = {n: to_tensor(np.asarray(v)) for n, v in observation.items() if n != "image"}
        if image_data is not None:
            tensor = to_tensor(np.asarray(observation["image"]))
            tensor.data = image_data
            tensors["image"] = tensor
        request = pb.ActRequest(session_id="s" * 36, step=100, observation=tensors)
        return int(request.ByteSize())

    image = np.asarray(observation["image"])
    return size(image.tobytes()), size(png_bytes(image)), size(None)


def _wire_figure(observation: Mapping[str, np.ndarray]) -> Figure:
    raw, png, plain = wire_bytes(observation)
    return Figure(
        "camera", "bytes per step on the wire, 96x96 RGB (ConveyorSort observation)", float(png),
        "bytes", reference=float(raw), reference_name="image raw uint8",
        ratio=png / raw, ratio_name="PNG vs raw",
        details={"raw": raw, "png": png, "without_image": plain},
    )  # fmt: skip


def _link_figure(
    observation: dict[str, np.ndarray],
    spaces: tuple[Any, Any, Any],
    profile: BenchProfile,
    serve: ServerFactory,
    progress: Progress,
) -> Figure:
    """Unary Act p50 with the image (raw; PNG) vs without, alternating rounds of ``link_steps``."""
    pictured_space, plain_space, action_space = spaces
    plain_obs = {k: v for k, v in observation.items() if k != "image"}
    progress(f"camera: link p50, {profile.link_rounds} rounds of {profile.link_steps} round trips")
    samples: dict[str, list[float]] = {"images": [], "plain": [], "png": []}
    servers = [serve(ImagePolicy(s, action_space)) for s in (pictured_space, plain_space)]
    remotes: list[RemotePolicy] = []
    try:
        targets: list[tuple[Any, Any, ImageEncoding]] = [
            (servers[0], pictured_space, "raw"),
            (servers[1], plain_space, "raw"),
            (servers[0], pictured_space, "png"),
        ]
        for server, space, encoding in targets:
            remotes.append(
                RemotePolicy(
                    server.address,
                    observation_space=space,
                    action_space=action_space,
                    deadline_s=5.0,
                    image_encoding=encoding,
                )
            )
        session = SessionInfo("bench-camera-link", seed=0)
        for remote in remotes:
            remote.reset(session)

        def rounds(remote: RemotePolicy, obs: dict[str, np.ndarray], key: str) -> float:
            for _ in range(profile.link_steps):
                start = time.perf_counter()
                remote.act(session, obs)
                samples[key].append((time.perf_counter() - start) * 1000)
            return 0.0

        alternate(
            lambda: (
                rounds(remotes[0], observation, "images") + rounds(remotes[2], observation, "png")
            ),
            lambda: rounds(remotes[1], plain_obs, "plain"),
            profile.link_rounds,
        )
    finally:
        for remote in remotes:
            remote.close()
        for server in servers:
            server.stop(0)
    p50 = {k: float(np.percentile(v, 50)) for k, v in samples.items()}
    return Figure(
        "camera", "policy link p50, unary Act, with a 96x96 RGB image", p50["images"], "ms",
        reference=p50["plain"], reference_name="without the image",
        ratio=p50["images"] / p50["plain"], ratio_name="with vs without",
        details={"p99_ms": float(np.percentile(samples["images"], 99)),
                 "p99_ms_without": float(np.percentile(samples["plain"], 99)),
                 "p50_ms_png": p50["png"], "p99_ms_png": float(np.percentile(samples["png"], 99)),
                 "calls": len(samples["images"])},
    )  # fmt: skip


def run(
    profile: BenchProfile,
    policy_for_site: Callable[[str], Policy],
    serve: ServerFactory,
    progress: Progress,
) -> tuple[list[Figure], list[str]]:
    """The camera section's figures (module docstring) and a note on the renderer."""
    figures = [_env_figure(site, profile, policy_for_site, progress) for site in profile.env_sites]
    env = gymnasium.make(ENV, site=profile.env_sites[0], camera_obs=CAMERA)
    plain = gymnasium.make(ENV, site=profile.env_sites[0])
    try:
        observation, _ = env.reset(seed=SEED)
        for _ in range(5):  # the arm in motion, a part on the belt
            observation = env.step(np.array([0.3, 0.0, -0.2, 0.0], np.float32))[0]
        figures.append(_wire_figure(observation))
        spaces = (env.observation_space, plain.observation_space, env.action_space)
        figures.append(_link_figure(dict(observation), spaces, profile, serve, progress))
    finally:
        env.close()
        plain.close()
    notes = [
        "camera: images come from TinyRenderer on the CPU (the default pinned renderer); its "
        "cost is per triangle (the robot's visual meshes), hardly per pixel: see render_ms. "
        "The link figure's details hold the p50 with the image sent as PNG (p50_ms_png)."
    ]
    return figures, notes
