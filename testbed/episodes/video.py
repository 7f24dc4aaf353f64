"""Videos of replayed episodes: headless frames, an overlay, an end card, a writer.

Frames come from the env's own renderer (``render_mode="rgb_array"``), from the cell camera or
a camera station of the site's stations.csv, with TinyRenderer (CPU, the default) or EGL. The
renderer, camera, size and frame rate are pinned in a JSON sidecar next to the video
(``out.mp4.json``), so two videos can be told apart and remade the same way.

Frame timing follows simulated time: frame ``k`` shows the first observation at or after
``k / fps`` seconds from the start, so a video plays in real time at any ``fps`` (one frame per
control step at the env's control rate, the default).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import imageio.v2 as imageio
import numpy as np

from testbed.episodes.env_contract import contract_of
from testbed.episodes.records import EpisodeRecord, atomic_write_text
from testbed.episodes.replay import Observer, ReplayReport, ReplayStep, open_env, replay_episode
from testbed.episodes.video_overlay import Overlay, end_card, scene_size
from testbed.errors import ReplayError

VIDEO_FORMAT = "testbed.episodes.replay-video/1"
VIDEO_SUFFIXES = (".mp4", ".gif")
EVENT_HOLD_S = 1.0  # how long an event stays on screen


@dataclass(frozen=True)
class VideoSettings:
    """How to film a replay.

    Attributes:
        size: (width, height) in pixels.
        fps: Frames per second of the video; None for the env's control rate.
        camera: Camera station id of the site; None for the cell camera.
        renderer: ``tiny`` (TinyRenderer) or ``egl``.
        overlay: A panel above the scene with policy, site, seed, step, parts tally, reward
            and the last event (`testbed.episodes.video_overlay`); the scene is rendered
            that much shorter, so the panel never covers it.
        end_card_s: Seconds of an end card after the last frame: success, or the failure
            reason (0 for none).
    """

    size: tuple[int, int] = (320, 240)
    fps: float | None = None
    camera: str | None = None
    renderer: str = "tiny"
    overlay: bool = True
    end_card_s: float = 0.0


@dataclass(frozen=True)
class VideoReport:
    """A written video.

    Attributes:
        path: The video file.
        sidecar: The JSON file pinning how it was made.
        frames: Frames written.
        fps: Frames per second of the video.
        renderer: The renderer that drew the frames.
        wall_time_s: Wall time of the replay that produced it (stepping, rendering, writing).
    """

    path: Path
    sidecar: Path
    frames: int
    fps: float
    renderer: str
    wall_time_s: float

    @property
    def frames_per_s(self) -> float:
        """Frames produced per wall second."""
        return self.frames / self.wall_time_s if self.wall_time_s > 0 else float("inf")


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``.

    Raises:
        ValueError: If the text is not ``WIDTHxHEIGHT`` with positive integers.
    """
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ValueError(f"size: expected WIDTHxHEIGHT such as 320x240, got {text!r}")
    return int(width), int(height)


def frames_due(steps_from_start: int, control_dt: float, fps: float) -> int:
    """Frames whose time has come after ``steps_from_start`` control steps (1 at the start)."""
    return math.floor(steps_from_start * control_dt * fps + 1e-9) + 1


def render_video(
    record: EpisodeRecord,
    out: Path,
    settings: VideoSettings | None = None,
    *,
    verify: bool = True,
    from_step: int = 0,
    workers: int = 1,
    source: str = "<record>",
    observers: tuple[Observer, ...] = (),
    last_s: float | None = None,
) -> tuple[ReplayReport, VideoReport]:
    """Replay ``record`` from ``from_step`` and film it into ``out`` (``.mp4`` or ``.gif``).

    With ``workers`` > 1, that many processes render (this one included): each helper replays
    the episode itself (replay is deterministic) and renders every ``workers``-th frame, while
    this process verifies, annotates and writes them in order. Rendering dominates the cost,
    so this scales with free cores.

    The video is written to a temporary name and renamed when complete, so a failed replay
    (a divergence, when verifying) leaves no video behind.

    Args:
        record: The episode.
        out: Video file to write; its sidecar goes to ``<out>.json``.
        settings: Size, frame rate, camera, renderer and overlay; None for the defaults.
        verify: Check the replay bit for bit while filming.
        from_step: First step filmed (the replay restores the nearest snapshot before it).
        workers: Processes rendering frames, this one included.
        source: How to name the record in messages and the sidecar (its path).
        observers: Also called with every `ReplayStep` (a progress bar, say).
        last_s: Film only the episode's last ``last_s`` seconds of simulated time (a clip of
            how it ended); the replay still starts from the nearest snapshot before them.

    Raises:
        ReplayError: If the output, size, camera or renderer is unusable, or the replay fails.
        ReplayDivergenceError: At the first difference, when verifying.
    """
    out, settings = Path(out), settings or VideoSettings()
    _check_output(out, settings.size)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    env = open_env(record.meta, source, **_render_kwargs(settings))
    try:
        control_dt = contract_of(env).control_dt
        fps = settings.fps or round(1.0 / control_dt, 6)
        if last_s is not None:
            from_step = max(from_step, record.steps - math.ceil(last_s / control_dt - 1e-9))
        film = _Film(record, settings, control_dt, fps, from_step)
        start = time.perf_counter()
        report = _film_replay(env, film, partial, max(1, workers), verify, source, observers)
        wall = time.perf_counter() - start
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        env.close()
    os.replace(partial, out)
    sidecar = _write_sidecar(out, record, settings, fps, film.frames, report, source)
    return report, VideoReport(out, sidecar, film.frames, fps, settings.renderer, wall)


def _film_replay(
    env: Any,
    film: _Film,
    partial: Path,
    workers: int,
    verify: bool,
    source: str,
    observers: tuple[Observer, ...],
) -> ReplayReport:
    """Run the verified replay with ``film`` writing into ``partial`` (helpers render too)."""
    writer = _open_writer(partial, film.fps, film.settings.renderer)
    helpers: _Helpers | None = None
    try:
        helpers = _Helpers(film.record, film.settings, film.from_step, workers, source)
        film.emit = _writer_sink(writer)
        film.share, film.fetch = (0, workers), helpers.fetch
        report = replay_episode(
            film.record,
            verify=verify,
            from_step=film.from_step,
            env=env,
            source=source,
            observers=(film, *observers),
        )
        film.end()
    except BaseException:
        if helpers is not None:
            helpers.close(abort=True)
        raise
    finally:
        writer.close()
    helpers.close()
    return report


def _writer_sink(writer: Any) -> Callable[[np.ndarray, int], None]:
    """A frame sink appending each frame ``repeats`` times to an imageio writer."""

    def emit(frame: np.ndarray, repeats: int) -> None:
        for _ in range(repeats):
            writer.append_data(frame)

    return emit


class _Film:
    """The observer that renders, annotates and emits frames as the replay goes.

    ``share = (index, count)``: this process renders shot ``k`` (the ``k``-th distinct frame)
    when ``k % count == index``; other shots come from ``fetch(owner)`` or, without a
    ``fetch``, are skipped (a helper process only renders its own).
    """

    def __init__(
        self,
        record: EpisodeRecord,
        settings: VideoSettings,
        control_dt: float,
        fps: float,
        from_step: int,
        emit: Callable[[np.ndarray, int], None] | None = None,
    ) -> None:
        self.record, self.settings = record, settings
        self.emit = emit or (lambda frame, repeats: None)
        self.control_dt, self.fps, self.from_step = control_dt, fps, from_step
        self.share: tuple[int, int] = (0, 1)
        self.fetch: Callable[[int], np.ndarray] | None = None
        self.frames = 0
        self.shots = 0
        self.recent: list[tuple[int, str]] = []
        self.overlay = Overlay(record, settings.size, control_dt)

    def __call__(self, step: ReplayStep) -> None:
        hold = max(1, round(EVENT_HOLD_S / self.control_dt))
        self.recent = [(i, e) for i, e in self.recent if step.index - i < hold]
        self.recent.extend((step.index, e) for e in step.events)
        due = frames_due(step.index - self.from_step, self.control_dt, self.fps)
        if due <= self.frames:
            return
        repeats, self.frames = due - self.frames, due
        owner = self.shots % self.share[1]
        self.shots += 1
        if owner == self.share[0]:
            self.emit(self._shoot(step), repeats)
        elif self.fetch is not None:
            self.emit(self.fetch(owner), repeats)

    def _shoot(self, step: ReplayStep) -> np.ndarray:
        frame = step.env.render()
        if not isinstance(frame, np.ndarray):
            raise ReplayError(f"{self.record.meta.env_id} rendered no frame (render_mode?)")
        return self._annotate(frame, step) if self.settings.overlay else frame

    def _annotate(self, frame: np.ndarray, step: ReplayStep) -> np.ndarray:
        recent = [e for _, e in self.recent[-3:]]
        return self.overlay.annotate(frame, step.index, step.reward, step.total_reward, recent)

    def end(self) -> None:
        """Emit the end card, for as long as the settings ask (nothing by default)."""
        repeats = round(self.settings.end_card_s * self.fps)
        if repeats > 0:
            self.emit(end_card(self.record, self.settings.size), repeats)
            self.frames += repeats


class _Helpers:
    """Helper processes that render every ``count + 1``-th frame each (spawned, not forked)."""

    def __init__(
        self,
        record: EpisodeRecord,
        settings: VideoSettings,
        from_step: int,
        workers: int,
        source: str,
    ) -> None:
        self.count = workers - 1
        self.source = source
        context = multiprocessing.get_context("spawn")
        self.queues = [context.Queue(maxsize=16) for _ in range(self.count)]
        self.processes = [
            context.Process(
                target=_helper_main,
                args=(record, settings, from_step, (index + 1, workers), queue, source),
                daemon=True,
            )
            for index, queue in enumerate(self.queues)
        ]
        for process in self.processes:
            process.start()

    def fetch(self, owner: int) -> np.ndarray:
        """The next frame rendered by helper ``owner`` (1-based, as in the share)."""
        queue, process = self.queues[owner - 1], self.processes[owner - 1]
        while True:
            try:
                item = queue.get(timeout=5.0)
            except Empty:
                if not process.is_alive():
                    raise ReplayError(f"{self.source}: render helper {owner} died") from None
                continue
            if isinstance(item, str):
                raise ReplayError(f"{self.source}: render helper {owner} failed: {item}")
            return item

    def close(self, abort: bool = False) -> None:
        """Wait for the helpers to finish; with ``abort``, stop them now."""
        for process in self.processes:
            process.join(timeout=0.0 if abort else 10.0)
            if process.is_alive():
                process.terminate()
                process.join()


def _helper_main(
    record: EpisodeRecord,
    settings: VideoSettings,
    from_step: int,
    share: tuple[int, int],
    queue: Any,
    source: str,
) -> None:
    """A helper process: replay without verifying, render this helper's share of frames."""
    try:
        env = open_env(record.meta, source, **_render_kwargs(settings))
        try:
            control_dt = contract_of(env).control_dt
            fps = settings.fps or round(1.0 / control_dt, 6)
            film = _Film(record, settings, control_dt, fps, from_step, lambda f, _: queue.put(f))
            film.share = share
            replay_episode(record, verify=False, from_step=from_step, env=env, observers=(film,))
        finally:
            env.close()
    except Exception as exc:  # noqa: BLE001  # reported to the parent, which raises it
        queue.put(f"{type(exc).__name__}: {exc}")


def _scene_size(settings: VideoSettings) -> tuple[int, int]:
    """What the env renders: the frame less the overlay's panel (the panel sits above it)."""
    return scene_size(settings.size) if settings.overlay else settings.size


def _render_kwargs(settings: VideoSettings) -> dict[str, Any]:
    return {
        "render_mode": "rgb_array",
        "render_size": _scene_size(settings),
        "renderer": settings.renderer,
        "camera": settings.camera,
    }


def _check_output(out: Path, size: tuple[int, int]) -> None:
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise ReplayError(f"--video {out}: expected a {' or '.join(VIDEO_SUFFIXES)} file")
    if out.suffix.lower() == ".mp4" and (size[0] % 2 or size[1] % 2):
        raise ReplayError(f"--size {size[0]}x{size[1]}: H.264 (mp4) needs an even width and height")
    if not out.parent.is_dir():
        raise ReplayError(f"--video {out}: folder {out.parent} does not exist")


def _open_writer(path: Path, fps: float, renderer: str) -> Any:
    if path.suffix.lower() == ".gif":
        # GIF delays are whole hundredths of a second: 30 fps plays at about 33 fps.
        return imageio.get_writer(path, format="GIF", mode="I", duration=1000.0 / fps, loop=0)
    return imageio.get_writer(
        path,
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=2,
        output_params=["-metadata", f"comment=testbed replay; renderer={renderer}"],
    )


def _write_sidecar(
    out: Path,
    record: EpisodeRecord,
    settings: VideoSettings,
    fps: float,
    frames: int,
    report: ReplayReport,
    source: str,
) -> Path:
    meta = record.meta
    data = {
        "format": VIDEO_FORMAT,
        "video": out.name,
        "episode": source,
        "env_id": meta.env_id,
        "env_kwargs": meta.env_kwargs,
        "site": meta.site,
        "bundle_hash": meta.bundle_hash,
        "seed": meta.seed,
        "from_step": report.from_step,
        "to_step": report.end_step,
        "verified": report.verified,
        **asdict(settings),
        "size": list(settings.size),
        "scene_size": list(_scene_size(settings)),
        "camera": settings.camera or "cell",
        "fps": fps,
        "frames": frames,
    }
    sidecar = out.with_name(out.name + ".json")
    atomic_write_text(sidecar, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return sidecar
