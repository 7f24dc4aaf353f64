"""Replay and video speed: re-simulating an episode against running it, in one process.

    .venv/bin/python bench/replay.py [--quick] [--sites kr-changwon us-austin] [--repeats 3]

For each site: the original run (scripted controller in-process, through `EpisodeRecorder`
with a snapshot every 100 steps, as a campaign records it) and the replay of the same episode
(`replay_episode`, verified bit for bit and unverified), alternated, medians of ``--repeats``.
Then video: frames per second of `render_video` at 320x240 (TinyRenderer, overlay, H.264),
with 1 and 2 rendering processes, next to the bare TinyRenderer frame rate of the same scene.
Goals (DESIGN.md): replay >= 1x the original; video >= 20 frames/s at 320x240.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402, F401
from policies.scripted import scripted_policy  # noqa: E402
from protos.specs import SessionInfo  # noqa: E402
from testbed.recorder import EpisodeRecorder  # noqa: E402
from testbed.records import EpisodeMeta, EpisodeRecord  # noqa: E402
from testbed.replay import open_env, replay_episode  # noqa: E402
from testbed.rollout import run_episode  # noqa: E402
from testbed.video import VideoSettings, render_video  # noqa: E402

ENV_ID = "Testbed/ConveyorSort-v0"
SEED = 7


def original_run(
    env: EpisodeRecorder, site: str, max_steps: int | None
) -> tuple[float, EpisodeRecord]:
    """One recorded episode; returns its wall time (reset to last step) and the record."""
    session = SessionInfo("bench", site=site, seed=SEED)
    start = time.perf_counter()
    result = run_episode(env, scripted_policy(site), session, max_steps=max_steps)
    wall = time.perf_counter() - start
    meta = EpisodeMeta(ENV_ID, {"site": site}, site, str(env.reset_info["bundle_hash"]), SEED, 0)
    return wall, env.record(meta, result.latencies_ms)


def replay_run(env: gym.Env, record: EpisodeRecord, verify: bool) -> float:
    start = time.perf_counter()
    replay_episode(record, verify=verify, env=env)
    return time.perf_counter() - start


def bench_site(site: str, max_steps: int | None, repeats: int) -> dict[str, float]:
    recorder = EpisodeRecorder(gym.make(ENV_ID, site=site), snapshot_every=100)
    original: list[float] = []
    record = None
    for _ in range(repeats):
        wall, record = original_run(recorder, site, max_steps)
        original.append(wall)
    assert record is not None
    replay_env = open_env(record.meta)
    verified, unverified = [], []
    for _ in range(repeats):  # alternate, so machine load hits both alike
        original.append(original_run(recorder, site, max_steps)[0])
        verified.append(replay_run(replay_env, record, True))
        unverified.append(replay_run(replay_env, record, False))
    recorder.close()
    replay_env.close()
    steps = record.steps
    return {
        "steps": steps,
        "original": steps / statistics.median(original),
        "verified": steps / statistics.median(verified),
        "unverified": steps / statistics.median(unverified),
    }


def bench_video(site: str, frames: int, workers: int, folder: Path) -> float:
    recorder = EpisodeRecorder(gym.make(ENV_ID, site=site), snapshot_every=100)
    _, record = original_run(recorder, site, frames)
    recorder.close()
    start = time.perf_counter()
    _, video = render_video(
        record, folder / f"{site}-{workers}.mp4", VideoSettings(), workers=workers
    )
    return video.frames / (time.perf_counter() - start)


def bare_render_fps(site: str, frames: int) -> float:
    env = gym.make(ENV_ID, site=site, render_mode="rgb_array", render_size=(320, 240))
    env.reset(seed=SEED)
    for _ in range(30):
        env.step(env.action_space.sample())
    start = time.perf_counter()
    for _ in range(frames):
        env.render()
    fps = frames / (time.perf_counter() - start)
    env.close()
    return fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300-step episodes, one repeat")
    parser.add_argument("--sites", nargs="+", default=["kr-changwon", "jp-nagoya", "us-austin"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300, help="video frames per measurement")
    parser.add_argument("--no-video", action="store_true", help="replay speed only")
    args = parser.parse_args()
    max_steps, repeats = (300, 1) if args.quick else (None, args.repeats)
    console = Console()
    table = Table(title=f"replay vs original run (steps/s, median of {repeats})")
    for column in (
        "site",
        "steps",
        "original",
        "replay (verified)",
        "ratio",
        "replay (no verify)",
        "ratio",
    ):
        table.add_column(column, justify="right")
    for site in args.sites:
        r = bench_site(site, max_steps, repeats)
        table.add_row(
            site, f"{r['steps']:.0f}", f"{r['original']:.0f}", f"{r['verified']:.0f}",
            f"{r['verified'] / r['original']:.2f}x", f"{r['unverified']:.0f}",
            f"{r['unverified'] / r['original']:.2f}x",
        )  # fmt: skip
    console.print(table)
    if args.no_video:
        return
    video = Table(title=f"video at 320x240, TinyRenderer, {args.frames} frames (frames/s)")
    for column in (
        "site",
        "bare render",
        "video, 1 process",
        "vs 20 fps",
        "video, 2 processes",
        "vs 20 fps",
    ):
        video.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        for site in args.sites:
            bare = bare_render_fps(site, 30)
            one = bench_video(site, args.frames, 1, Path(folder))
            two = bench_video(site, args.frames, 2, Path(folder))
            video.add_row(
                site,
                f"{bare:.1f}",
                f"{one:.1f}",
                f"{one / 20:.2f}x",
                f"{two:.1f}",
                f"{two / 20:.2f}x",
            )
    console.print(video)


if __name__ == "__main__":
    main()
