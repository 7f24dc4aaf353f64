"""``testbed replay EPISODE``: re-simulate a recorded episode, verify it, film it, watch it.

Exit codes: 0 replayed (and, with ``--verify``, bit-identical), 1 diverged, 2 cannot replay.
Errors go to stderr as ``error: ...`` (with ``--json``: the JSON object on stdout).
Guide: docs/replay.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from testbed.cli import _egress, app
from testbed.cli._errors import print_error
from testbed.errors import ReplayDivergenceError, ReplayError

if TYPE_CHECKING:  # replay and video pull in gymnasium, pybullet, imageio: only when run
    from testbed.episodes.records import EpisodeRecord
    from testbed.episodes.replay import Observer, ReplayReport, ReplayStep
    from testbed.episodes.rerun_export import RerunReport
    from testbed.episodes.video import VideoReport
    from testbed.governance.records import EgressRequest


def _console() -> Console:
    # Built per call so output goes to the stdout that is current (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


@app.command("replay")
def replay_command(
    episode: Annotated[Path, typer.Argument(help="Episode record (.npz) to replay.")],
    verify: Annotated[
        bool, typer.Option(help="Check every step is bit-identical to the record.")
    ] = True,
    from_step: Annotated[
        int, typer.Option("--from-step", help="Start here (restores the nearest snapshot).")
    ] = 0,
    video: Annotated[
        Path | None, typer.Option(help="Write a video of the replay (.mp4 or .gif).")
    ] = None,
    size: Annotated[str, typer.Option(help="Video frame size, WIDTHxHEIGHT.")] = "320x240",
    fps: Annotated[
        float | None, typer.Option(help="Video frame rate [default: the control rate].")
    ] = None,
    camera: Annotated[
        str | None, typer.Option(help="Camera station id of the site [default: cell camera].")
    ] = None,
    renderer: Annotated[str, typer.Option(help="Video renderer: tiny or egl.")] = "tiny",
    clip: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS", help="Film only the episode's last SECONDS of simulated time."
        ),
    ] = None,
    end_card: Annotated[
        float,
        typer.Option(
            "--end-card", metavar="SECONDS", help="Seconds of an end card: success or why not."
        ),
    ] = 1.5,
    overlay: Annotated[
        bool, typer.Option(help="A panel above the scene: who, when, tally, last event.")
    ] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes rendering video frames (free cores help).")
    ] = 1,
    rerun: Annotated[
        Path | None,
        typer.Option(help="Write a Rerun recording (.rrd) of the replay: needs the rerun extra."),
    ] = None,
    gui: Annotated[bool, typer.Option(help="Watch in the PyBullet GUI (needs a display).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    to: _egress.To = None,
    basis: _egress.Basis = "",
    requester: _egress.Requester = None,
    redacted: _egress.Redacted = False,
) -> None:
    """Rebuild the episode's site and re-apply its recorded actions (no policy, no network).

    A video goes through the egress gate first (``--to``, docs/governance.md): refused, it
    exits 2 and writes nothing.
    """
    from testbed.episodes.replay import load_episode
    from testbed.episodes.rerun_export import export_rerun
    from testbed.episodes.video import VideoSettings, parse_size, render_video

    console = _console()
    exported: RerunReport | None = None
    try:
        record = load_episode(episode)
        if renderer not in ("tiny", "egl"):
            raise ReplayError(f"--renderer: expected tiny or egl, got {renderer!r}")
        if gui and video is not None:
            raise ReplayError("--gui and --video: choose one (the GUI renders with OpenGL)")
        _check_film_options(video, clip, end_card)
        if rerun is not None and (video is not None or gui):
            raise ReplayError("--rerun with --video or --gui: one output per replay")
        egress = _egress.request(to, basis, requester, redacted)
        if video is not None:
            _gate_video(episode, record, video, egress)
        if rerun is not None:
            _gate_rerun(episode, record, rerun, egress)
        with _progress(console, record, from_step, quiet=as_json or gui) as observer:
            if video is not None:
                settings = VideoSettings(parse_size(size), fps, camera, renderer, overlay, end_card)
                report, film = render_video(
                    record,
                    video,
                    settings,
                    verify=verify,
                    from_step=from_step,
                    workers=workers,
                    source=str(episode),
                    observers=(observer,),
                    last_s=clip,
                )
            elif rerun is not None:
                report, exported = export_rerun(
                    record,
                    rerun,
                    verify=verify,
                    from_step=from_step,
                    source=str(episode),
                    observers=(observer,),
                )
                film = None
            else:
                report, film = _replay(record, episode, verify, from_step, gui, observer), None
    except ReplayDivergenceError as error:
        _fail(console, as_json, "diverged", error, 1)
    except (ReplayError, ValueError) as error:
        _fail(console, as_json, "error", error, 2)
    _print_report(console, report, film, as_json, exported)


def _check_film_options(video: Path | None, clip: float | None, end_card: float) -> None:
    if clip is not None and video is None:
        raise ReplayError("--clip films the end of the episode: give --video too")
    if clip is not None and not (math.isfinite(clip) and clip > 0):
        raise ReplayError(f"--clip: expected seconds > 0, got {clip:g}")
    if not (math.isfinite(end_card) and 0 <= end_card <= 60):
        raise ReplayError(f"--end-card: expected seconds from 0 to 60, got {end_card:g}")


def _gate_video(episode: Path, record: EpisodeRecord, video: Path, egress: EgressRequest) -> None:
    """Ask the egress gate for the video of ``episode`` (raises `EgressRefused`, exit 2)."""
    from testbed.governance.records import gate_records, store_of

    gate_records(store_of(episode), [(episode, record.meta)], "images_video", video, egress)


def _gate_rerun(episode: Path, record: EpisodeRecord, out: Path, egress: EgressRequest) -> None:
    """Ask the gate for a Rerun file of ``episode`` (raises `EgressRefused`, exit 2).

    The file holds the cell's layout and every step's poses, as the record does
    (``episode_records``), and camera frames if the record has them (``images_video`` too).
    """
    from testbed.governance.records import gate_records, store_of

    pairs = [(episode, record.meta)]
    gate_records(store_of(episode), pairs, "episode_records", out, egress)
    if any(rows.dtype == "uint8" and rows.ndim == 4 for rows in record.observations.values()):
        gate_records(store_of(episode), pairs, "images_video", out, egress)


def _replay(
    record: EpisodeRecord, path: Path, verify: bool, from_step: int, gui: bool, observer: Observer
) -> ReplayReport:
    from testbed.episodes.env_contract import contract_of
    from testbed.episodes.replay import open_env, replay_episode

    if not gui:
        return replay_episode(
            record, verify=verify, from_step=from_step, source=str(path), observers=(observer,)
        )
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise ReplayError("--gui needs a display: DISPLAY is not set (use --video instead)")
    env = open_env(record.meta, str(path), render_mode="human")
    pace = _RealTime(contract_of(env).control_dt)  # open_env has checked the contract
    try:
        return replay_episode(
            record,
            verify=verify,
            from_step=from_step,
            env=env,
            source=str(path),
            observers=(observer, pace),
        )
    finally:
        env.close()


class _RealTime:
    """Observer that sleeps so the GUI shows the episode at its real speed."""

    def __init__(self, control_dt: float) -> None:
        self.control_dt = control_dt
        self.next = time.perf_counter()

    def __call__(self, step: ReplayStep) -> None:
        self.next += self.control_dt
        time.sleep(max(0.0, self.next - time.perf_counter()))


@contextmanager
def _progress(
    console: Console, record: EpisodeRecord, start: int, quiet: bool
) -> Iterator[Observer]:
    """A progress bar over the replayed steps (on stderr, if a terminal); yields its observer."""
    errors = Console(stderr=True)
    bar = Progress(
        TextColumn("replay {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=quiet or record.steps - start < 200 or not errors.is_terminal,
    )
    task = bar.add_task(record.meta.site, total=record.steps, completed=start)
    with bar:
        yield lambda step: bar.update(task, completed=step.index)


def _fail(console: Console, as_json: bool, status: str, error: Exception, code: int) -> NoReturn:
    if as_json:
        data: dict[str, Any] = {"status": status, "error": str(error)}
        if isinstance(error, ReplayDivergenceError):
            data.update(step=error.step, observation=error.observation, field=error.field)
            data.update(index=list(error.index), recorded=error.recorded, replayed=error.replayed)
        console.print_json(json.dumps(data, default=str))
    else:
        print_error(str(error))
    raise typer.Exit(code=code)


def _print_report(
    console: Console,
    report: ReplayReport,
    film: VideoReport | None,
    as_json: bool,
    exported: RerunReport | None = None,
) -> None:
    meta = report.meta
    original = meta.steps / meta.wall_time_s if meta.wall_time_s > 0 else None
    if as_json:
        data: dict[str, Any] = {
            "status": "verified" if report.verified else "replayed",
            "episode": report.source,
            "site": meta.site,
            "seed": meta.seed,
            "start_step": report.start_step,
            "from_step": report.from_step,
            "end_step": report.end_step,
            "steps_per_s": report.steps_per_s,
            "original_steps_per_s": original,
        }
        if film is not None:
            data["video"] = {"path": str(film.path), "sidecar": str(film.sidecar)}
            data["video"].update(frames=film.frames, fps=film.fps, renderer=film.renderer)
        if exported is not None:
            data["rerun"] = {"path": str(exported.path), "steps": exported.steps}
            data["rerun"]["entities"] = len(exported.entities)
        console.print_json(json.dumps(data))
        return
    status = "OK verified bit-identical" if report.verified else "OK replayed (not verified)"
    start = f" from snapshot at step {report.start_step}" if report.start_step else ""
    console.print(
        f"{status}: {report.source} ({meta.site}, seed {meta.seed}), steps "
        f"{report.from_step}..{report.end_step}{start}, {report.steps_per_s:.0f} steps/s"
        + (f" (recorded run: {original:.0f} steps/s with its policy)" if original else ""),
        markup=False,
    )
    if film is not None:
        console.print(
            f"video: {film.path} ({film.frames} frames at {film.fps:g} fps, {film.renderer} "
            f"renderer, {film.frames_per_s:.1f} frames/s); settings in {film.sidecar}",
            markup=False,
        )
    if exported is not None:
        console.print(
            f"rerun: {exported.path} ({exported.steps} steps, {len(exported.entities)} "
            f"entities, {exported.wall_time_s:.1f} s); open it with: rerun {exported.path}",
            markup=False,
        )
