"""Clips of failed episodes for the report: the last seconds of each, and its failure reason.

``testbed report --clips SECONDS`` films every failed episode's end into the report folder
(``clips/<trial>/episodes/ep-00003.gif``), where the report's episode sections find it
(`testbed.results.episode_pages.find_clip`). The replay is verified while filming, so a clip
shows what was recorded. A clip newer than its record is kept, so a second report films
nothing again. Filming is never part of a measured run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from testbed.episodes.records import RecordError, read_record
from testbed.errors import ReplayError
from testbed.results.episode_pages import CLIPS_DIR

#: Clip size and frame rate: small enough that a page of them stays light.
CLIP_SIZE = (320, 240)
CLIP_FPS = 10.0
#: Seconds of the end card (the failure reason) after the last frame.
CLIP_END_CARD_S = 1.5


@dataclass
class FilmedClips:
    """What `film_failed` did.

    Attributes:
        made: Clips filmed now.
        kept: Clips already there and newer than their record.
        problems: One message per failed episode that could not be filmed.
    """

    made: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def film_failed(episodes: pd.DataFrame, root: Path, out_dir: Path, seconds: float) -> FilmedClips:
    """Film the last ``seconds`` of every failed episode into ``out_dir/clips``.

    Args:
        episodes: The episode table (``success`` and ``record`` columns).
        root: The campaign folder the ``record`` paths are relative to.
        out_dir: The report folder.
        seconds: Simulated seconds before each episode's end to film.
    """
    from testbed.episodes.video import VideoSettings, render_video  # pybullet: only when asked

    settings = VideoSettings(size=CLIP_SIZE, fps=CLIP_FPS, end_card_s=CLIP_END_CARD_S)
    result = FilmedClips()
    for record in episodes.loc[~episodes["success"].astype(bool), "record"]:
        source = Path(root) / str(record)
        clip = (Path(out_dir) / CLIPS_DIR / str(record)).with_suffix(".gif")
        if clip.is_file() and clip.stat().st_mtime >= source.stat().st_mtime:
            result.kept.append(clip)
            continue
        clip.parent.mkdir(parents=True, exist_ok=True)
        try:
            render_video(read_record(source), clip, settings, source=str(source), last_s=seconds)
        except (RecordError, ReplayError) as error:
            named = str(error) if str(error).startswith(str(source)) else f"{source}: {error}"
            result.problems.append(f"no clip of {named}")
            continue
        result.made.append(clip)
    return result
