"""Replay and video speed: re-simulating an episode against running it, in one process.

For each site: the original run (a policy in-process, through `EpisodeRecorder` with a snapshot
every 100 steps, as a campaign records it) and the replay of the same episode (`replay_episode`,
verified bit for bit), alternated, medians of the profile's repeats, in CPU time of this thread.
Then video: frames per wall second of `render_video` at 320x240 (TinyRenderer, overlay, H.264),
next to the bare TinyRenderer frame rate of the same scene. Goals: replay >= 1x the original;
video >= 25 frames/s with the default settings (DESIGN.md).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym

import envs  # noqa: F401  (registers the Testbed env ids)
from testbed.bench.figures import (
    ENV_ID,
    SEED,
    BenchProfile,
    Figure,
    Progress,
    alternate,
    cpu_seconds,
    median,
)
from testbed.episodes.recorder import EpisodeRecorder
from testbed.episodes.records import EpisodeMeta, EpisodeRecord
from testbed.episodes.replay import open_env, replay_episode
from testbed.episodes.rollout import run_episode
from testbed.episodes.video import VideoSettings, render_video
from testbed.link.policy import Policy, SessionInfo

GOAL_FPS = 25.0
"""DESIGN.md: video at 320x240 at least 25 frames/s with the default settings at every site."""
BARE_FRAMES = 20


def record_episode(
    env: EpisodeRecorder, policy: Policy, site: str, max_steps: int | None
) -> EpisodeRecord:
    """Run and record one episode of ``policy`` at ``site``."""
    session = SessionInfo("bench", site=site, seed=SEED)
    result = run_episode(env, policy, session, max_steps=max_steps)
    meta = EpisodeMeta(ENV_ID, {"site": site}, site, str(env.reset_info["bundle_hash"]), SEED, 0)
    return env.record(meta, result.latencies_ms)


def replay_speed(
    site: str, policy: Policy, profile: BenchProfile
) -> tuple[int, list[float], list[float]]:
    """CPU seconds of the original run and of its verified replay, alternated.

    Returns:
        The episode's steps, original seconds, replay seconds.
    """
    recorder = EpisodeRecorder(gym.make(ENV_ID, site=site), snapshot_every=100)
    record = record_episode(recorder, policy, site, profile.replay_max_steps)
    replay_env = open_env(record.meta)
    session = SessionInfo("bench", site=site, seed=SEED)
    try:

        def original() -> float:
            return cpu_seconds(
                lambda: run_episode(recorder, policy, session, max_steps=profile.replay_max_steps)
            )

        def replay() -> float:
            return cpu_seconds(lambda: replay_episode(record, verify=True, env=replay_env))

        # The original's env is warm (it recorded the episode); the replay env's first reset
        # builds the cell (URDF loads), later ones restore it: warm it up the same way.
        replay_episode(record, verify=False, env=replay_env)
        originals, replays = alternate(original, replay, profile.replay_repeats)
    finally:
        recorder.close()
        replay_env.close()
    return record.steps, originals, replays


def video_speed(site: str, policy: Policy, frames: int, workers: int, folder: Path) -> float:
    """Frames per wall second of `render_video` (320x240) for ``frames`` steps of an episode."""
    recorder = EpisodeRecorder(gym.make(ENV_ID, site=site), snapshot_every=100)
    try:
        record = record_episode(recorder, policy, site, frames)
    finally:
        recorder.close()
    start = time.perf_counter()
    _, video = render_video(
        record, folder / f"{site}-{workers}.mp4", VideoSettings(size=(320, 240)), workers=workers
    )
    return video.frames / (time.perf_counter() - start)


def bare_render_fps(site: str) -> float:
    """Frames per wall second of the env's own TinyRenderer frame at 320x240."""
    env = gym.make(ENV_ID, site=site, render_mode="rgb_array", render_size=(320, 240))
    try:
        env.reset(seed=SEED)
        for _ in range(30):
            env.step(env.action_space.sample())
        env.render()
        start = time.perf_counter()
        for _ in range(BARE_FRAMES):
            env.render()
        return BARE_FRAMES / (time.perf_counter() - start)
    finally:
        env.close()


def run(
    profile: BenchProfile, policy_for_site: Callable[[str], Policy], progress: Progress
) -> tuple[list[Figure], list[str]]:
    """The replay section: replay vs original per site, then video frame rates."""
    figures = []
    for site in profile.replay_sites:
        progress(f"replay: {site}, original run and replay x{profile.replay_repeats}")
        steps, originals, replays = replay_speed(site, policy_for_site(site), profile)
        original, replayed = steps / median(originals), steps / median(replays)
        ratio = median([o / r for o, r in zip(originals, replays, strict=True)])
        figures.append(
            Figure("replay", f"replay {site} (verified)", replayed, "steps/s",
                   reference=original, reference_name="original", ratio=ratio,
                   ratio_name="vs original", goal=">= 1x", met=ratio >= 1.0,
                   details={"steps": steps, "original_cpu_s": originals,
                            "replay_cpu_s": replays})
        )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-video-") as folder:
        for site in profile.replay_sites:
            progress(f"replay: {site}, video at 320x240")
            bare = bare_render_fps(site)
            for workers in profile.video_workers:
                fps = video_speed(
                    site, policy_for_site(site), profile.video_frames, workers, Path(folder)
                )
                figures.append(
                    Figure("replay", f"video {site} 320x240, {workers} process(es)", fps,
                           "frames/s", reference=bare, reference_name="bare render",
                           ratio=fps / bare, ratio_name="vs bare render",
                           goal=f">= {GOAL_FPS:g} frames/s", met=fps >= GOAL_FPS,
                           details={"frames": profile.video_frames})
                )  # fmt: skip
    return figures, []
