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


def test_overlay_draws_a_panel_above_the_scene(tmp_path: Path) -> None:
    from testbed.episodes.video_overlay import panel_rows, scene_size

    record = cached_episode("kr-changwon")
    rows = panel_rows((160, 120))
    assert scene_size((160, 120)) == (160, 120 - rows)
    plain = VideoSettings(size=(160, 120 - rows), fps=5.0, overlay=False)
    _, bare = render_video(record, tmp_path / "plain.gif", plain, from_step=195, verify=False)
    text = VideoSettings(size=(160, 120), fps=5.0, overlay=True)
    _, video = render_video(record, tmp_path / "text.gif", text, from_step=195, verify=False)
    assert json.loads(video.sidecar.read_text())["scene_size"] == [160, 120 - rows]
    without, with_text = (
        iio.imread(tmp_path / "plain.gif", index=0),
        iio.imread(tmp_path / "text.gif", index=0),
    )
    assert with_text.shape == (120, 160, 3) and without.shape == (120 - rows, 160, 3)
    panel = with_text[:rows].astype(int)
    assert panel.mean() < 60 and (panel.min(axis=2) > 200).any()  # dark, with white text
    # The scene is whole below the panel (GIF palettes differ by a level or two).
    assert np.abs(with_text[rows:].astype(int) - without).mean() < 2.0


def test_the_overlay_never_covers_the_scene() -> None:
    from testbed.episodes.video_overlay import Overlay, panel_lines, panel_rows, scene_size

    record = cached_episode("kr-changwon")
    for size in ((320, 240), (160, 120), (96, 72), (64, 48), (640, 480)):
        overlay = Overlay(record, size, CONTROL_DT["kr-changwon"])
        width, height = scene_size(size)
        scene = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        for recent in ([], ["sorted: KR-PCB-100 -> bin1"], ["violation: tcp_speed"]):
            frame = overlay.annotate(scene, 150, 0.1, 2.0, recent)
            assert frame.shape == (size[1], size[0], 3)
            assert np.array_equal(frame[panel_rows(size) :], scene)
    assert [panel_lines((96, h)) for h in (240, 120, 72, 48, 32)] == [3, 3, 2, 1, 0]
    assert scene_size((64, 32)) == (64, 32)  # a thumbnail: no panel


def test_the_panel_names_the_last_event_so_far() -> None:
    from testbed.episodes.video_overlay import GREY, Overlay, panel_rows

    record = cached_episode("kr-changwon")
    assert record.meta.events, "the scripted controller sorts a part within 200 steps"
    overlay = Overlay(record, (320, 240), CONTROL_DT["kr-changwon"])
    scene = np.zeros((240 - panel_rows((320, 240)), 320, 3), dtype=np.uint8)
    before = overlay.annotate(scene, 0, 0.0, 0.0, [])
    after = overlay.annotate(scene, record.steps, 0.0, 0.0, [])
    third = slice(2 + 2 * overlay.line, 2 + 3 * overlay.line)
    text = after[third].astype(int)
    grey = (text.max(axis=2) - text.min(axis=2) < 8) & (text.min(axis=2) > 100)
    assert grey.sum() > 20 and GREY[0] > 100  # grey letters: an event of the past
    assert not np.array_equal(before[third], after[third])  # not "no event yet"


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
    # The CLI's end card (1.5 s by default) is one GIF frame: GIF merges repeated frames.
    frames = iio.imread(out, index=None)
    assert len(frames) == frames_due(10, CONTROL_DT["us-austin"], 6.0) + 1
    assert json.loads(out.with_name("ep.gif.json").read_text())["end_card_s"] == 1.5
    assert frames[-1].mean() < 60  # the card: dark, a few words
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


def test_cli_clip_films_the_end_of_the_episode(tmp_path: Path) -> None:
    path = write_record(tmp_path / "ep-00000.npz", cached_episode("us-austin"))
    out = tmp_path / "clip.mp4"
    args = ["replay", str(path), "--video", str(out), "--size", "96x72", "--fps", "6"]
    result = runner.invoke(app, [*args, "--clip", "0.5", "--end-card", "0", "--json"])
    assert result.exit_code == 0, result.output
    steps = round(0.5 / CONTROL_DT["us-austin"])  # 12 steps of 1/24 s
    assert json.loads(result.output)["from_step"] == cached_episode("us-austin").steps - steps
    assert _mp4_frames(out) == frames_due(steps, CONTROL_DT["us-austin"], 6.0)
    for bad, message in (
        (["replay", str(path), "--clip", "2"], "--clip films the end of the episode"),
        ([*args, "--clip", "0"], "--clip: expected seconds > 0"),
        ([*args, "--end-card", "-1"], "--end-card: expected seconds from 0 to 60"),
    ):
        refused = runner.invoke(app, bad)
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert "Traceback" not in refused.output


def test_the_tally_counts_every_task_s_parts() -> None:
    from testbed.episodes.video_overlay import Overlay

    record = cached_episode("kr-changwon")
    events = ((10, "grasp:0"), (40, "placed:0"), (90, "dropped:1"), (120, "inserted:peg"))
    palletized = dataclasses.replace(record, meta=dataclasses.replace(record.meta, events=events))
    overlay = Overlay(palletized, (320, 240), CONTROL_DT["kr-changwon"])
    assert overlay.tally_at(41) == "inserted 0  placed 1  dropped 0"
    assert overlay.tally_at(200) == "inserted 1  placed 1  dropped 1"
