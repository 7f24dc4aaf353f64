"""Replay videos: frame count and timing, overlay, sidecar, renderers, helpers, failure cleanup."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

import testbed.cli.episodes  # noqa: F401  (registers the commands; with one, typer
import testbed.cli.replay  # noqa: F401  would make it the whole app)
from envs.errors import SimulationError
from envs.sim import Sim
from testbed.cli import app
from testbed.episodes.records import write_record
from testbed.episodes.video import VideoSettings, frames_due, parse_size, render_video
from testbed.errors import ReplayDivergenceError, ReplayError
from tests.testbed.recording import cached_episode

runner = CliRunner()
CONTROL_DT = {"kr-changwon": 1 / 30, "us-austin": 1 / 24}  # control periods of the sites


def _mp4_frames(path: Path) -> int:
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return reader.count_frames()
    finally:
        reader.close()


def test_frames_follow_simulated_time() -> None:
    assert frames_due(0, 1 / 30, 30) == 1
    assert frames_due(30, 1 / 30, 30) == 31
    assert frames_due(30, 1 / 30, 10) == 11  # every third step
    assert frames_due(10, 1 / 24, 48) == 21  # faster than the control rate: repeats
    assert frames_due(1, 1 / 24, 10) == 1


def test_parse_size() -> None:
    assert parse_size("320x240") == (320, 240)
    for bad in ("320", "x240", "320x-1", "0x240", "wide"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            parse_size(bad)


def test_mp4_decodes_with_the_expected_frame_count(tmp_path: Path) -> None:
    record = cached_episode("kr-changwon")
    out = tmp_path / "replay.mp4"
    report, video = render_video(record, out, VideoSettings(size=(160, 120)), from_step=160)
    expected = frames_due(record.steps - 160, CONTROL_DT["kr-changwon"], 30.0)
    assert video.frames == expected == 41
    assert _mp4_frames(out) == expected
    assert report.verified and report.start_step == 150
    sidecar = json.loads(video.sidecar.read_text())
    assert sidecar["renderer"] == "tiny" and sidecar["camera"] == "cell"
    assert (sidecar["frames"], sidecar["size"], sidecar["from_step"]) == (41, [160, 120], 160)
    assert not list(tmp_path.glob(".*partial*"))


def test_gif_at_a_lower_frame_rate_from_a_camera_station(tmp_path: Path) -> None:
    record = cached_episode("us-austin")
    out = tmp_path / "replay.gif"
    settings = VideoSettings(size=(160, 120), fps=8.0, camera="cam1")
    _, video = render_video(record, out, settings, from_step=170)
    expected = frames_due(record.steps - 170, CONTROL_DT["us-austin"], 8.0)
    assert video.frames == expected == 11
    frames = iio.imread(out, index=None)
    assert frames.shape == (expected, 120, 160, 3)
    assert json.loads(video.sidecar.read_text())["camera"] == "cam1"


def test_overlay_draws_on_the_frame(tmp_path: Path) -> None:
    record = cached_episode("kr-changwon")
    plain = VideoSettings(size=(160, 120), fps=5.0, overlay=False)
    render_video(record, tmp_path / "plain.gif", plain, from_step=195, verify=False)
    text = dataclasses.replace(plain, overlay=True)
    render_video(record, tmp_path / "text.gif", text, from_step=195, verify=False)
    without, with_text = (
        iio.imread(tmp_path / "plain.gif", index=0),
        iio.imread(tmp_path / "text.gif", index=0),
    )
    header = slice(0, 10)
    assert with_text[header].mean() < without[header].mean() - 40  # a dark band with text
    assert np.array_equal(with_text[60:100], without[60:100])  # the scene itself is untouched


def test_the_end_card_says_how_the_episode_ended(tmp_path: Path) -> None:
    record = cached_episode("kr-changwon")  # cut at 200 steps with parts left: a failure
    settings = VideoSettings(size=(160, 120), fps=5.0, end_card_s=1.0)
    _, video = render_video(record, tmp_path / "end.mp4", settings, from_step=195, verify=False)
    frames = iio.imread(tmp_path / "end.mp4", index=None)
    filmed = frames_due(5, CONTROL_DT["kr-changwon"], 5.0)
    assert video.frames == len(frames) == _mp4_frames(video.path) == filmed + 5
    card, last_scene = frames[-1], frames[filmed - 1]
    assert np.abs(card.astype(int) - last_scene).mean() > 40  # not the scene
    red = (card[..., 0] > 180) & (card[..., 1] < 150)
    assert card.mean() < 60 and red.any()  # dark, with "FAILED" in red
    assert json.loads(video.sidecar.read_text())["end_card_s"] == 1.0


def test_helper_processes_render_the_same_frames(tmp_path: Path) -> None:
    record = cached_episode("kr-changwon")
    settings = VideoSettings(size=(96, 72), fps=10.0)
    render_video(record, tmp_path / "one.gif", settings, from_step=185, workers=1)
    _, video = render_video(record, tmp_path / "two.gif", settings, from_step=185, workers=2)
    one, two = (
        iio.imread(tmp_path / "one.gif", index=None),
        iio.imread(tmp_path / "two.gif", index=None),
    )
    assert video.frames == len(one) == len(two) == 6
    assert np.array_equal(one, two)


def test_egl_renderer_is_pinned_in_the_sidecar(tmp_path: Path) -> None:
    probe = Sim(1 / 240, (0.0, 0.0, -9.81))
    try:
        probe.enable_egl()
    except SimulationError as error:
        pytest.skip(f"EGL unavailable here: {error}")
    finally:
        probe.close()
    settings = VideoSettings(size=(96, 72), renderer="egl")
    record = cached_episode("kr-changwon")
    _, video = render_video(record, tmp_path / "egl.mp4", settings, from_step=195)
    assert json.loads(video.sidecar.read_text())["renderer"] == "egl"
    assert _mp4_frames(video.path) == 6


def test_a_diverging_replay_leaves_no_video(tmp_path: Path) -> None:
    record = cached_episode("kr-changwon")
    actions = record.actions.copy()
    actions[170:, :3] = -actions[170:, :3] - 0.5
    tampered = dataclasses.replace(record, actions=np.clip(actions, -1, 1))
    with pytest.raises(ReplayDivergenceError):
        render_video(tampered, tmp_path / "bad.mp4", VideoSettings(size=(96, 72)), from_step=165)
    assert list(tmp_path.iterdir()) == []


def test_unusable_video_settings_are_refused(tmp_path: Path) -> None:
    record = cached_episode("kr-changwon")
    with pytest.raises(ReplayError, match="even width and height"):
        render_video(record, tmp_path / "odd.mp4", VideoSettings(size=(161, 120)))
    with pytest.raises(ReplayError, match=r"expected a \.mp4 or \.gif"):
        render_video(record, tmp_path / "movie.avi")
    with pytest.raises(ReplayError, match="not a camera station of site 'kr-changwon'"):
        render_video(record, tmp_path / "cam.mp4", VideoSettings(camera="robot1"))


def test_cli_writes_a_video(tmp_path: Path) -> None:
    path = write_record(tmp_path / "ep-00000.npz", cached_episode("us-austin"))
    out = tmp_path / "ep.gif"
    args = ["replay", str(path), "--video", str(out), "--size", "96x72", "--fps", "6"]
    result = runner.invoke(app, [*args, "--from-step", "190"])
    assert result.exit_code == 0, result.output
    assert "video:" in result.output and "tiny renderer" in result.output
    assert len(iio.imread(out, index=None)) == frames_due(10, CONTROL_DT["us-austin"], 6.0)
    bad = runner.invoke(app, ["replay", str(path), "--video", str(out), "--size", "big"])
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output


def test_the_overlay_tallies_parts_as_the_replay_shows_their_events() -> None:
    from testbed.episodes.video_overlay import Overlay

    record = cached_episode("kr-changwon")
    sorted_at = [s for s, e in record.meta.events if e.startswith("sorted:")]
    assert sorted_at, "the scripted controller sorts a part within 200 steps"
    overlay = Overlay(record, (320, 240), CONTROL_DT["kr-changwon"])
    # the event of action k shows with observation k + 1, as the replay's events do
    assert overlay.tally_at(sorted_at[0]) == "sorted 0"
    assert overlay.tally_at(sorted_at[0] + 1) == "sorted 1"
    assert overlay.tally_at(record.steps) == f"sorted {len(sorted_at)}"
