"""What a replay video shows beside the scene, and the card that ends it.

The overlay is a panel of three lines above the scene, never on it: the policy, site and seed
with the step and simulated time; the parts tally so far (the `TALLIED` events the record has:
sorted, wrong bin, lost; inserted; placed, displaced, dropped, toppled) with the reward; the
last event. The scene is rendered that
much shorter (`scene_size`), and the cell camera frames the whole cell in it, so the text never
covers the arm. Small frames get fewer lines (at most 40% of the height: two at 72 rows, one
at 48, none below 38). The end card says success, or the episode's failure reason, for as long as
`VideoSettings.end_card_s <testbed.episodes.video.VideoSettings>` asks.
"""

from __future__ import annotations

import bisect
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from testbed.episodes.records import EpisodeRecord

#: Event kinds the overlay tallies (those a task records when it resolves a part): parts done
#: and lost for sorting, insertion and palletizing; a record shows the kinds it has.
TALLIED = ("sorted", "wrong_bin", "lost", "inserted", "placed", "displaced", "dropped", "toppled")
#: Lines of the panel above the scene (fewer in small frames: `panel_lines`).
PANEL_LINES = 3
#: The panel takes at most this share of a frame's height.
PANEL_SHARE = 0.4
PANEL = (24, 24, 24)
WHITE, GREEN, RED, ORANGE = (255, 255, 255), (140, 230, 140), (255, 110, 100), (255, 150, 60)
GREY = (170, 170, 170)


def _font_size(height: int) -> int:
    return max(9, height // 22)


def panel_lines(size: tuple[int, int]) -> int:
    """Lines the panel has in frames of ``size`` (width, height).

    Three, or as many as fit in `PANEL_SHARE` of the height (none in a thumbnail).
    """
    line = _font_size(size[1]) + 3
    return max(0, min(PANEL_LINES, int((PANEL_SHARE * size[1] - 3) // line)))


def panel_rows(size: tuple[int, int]) -> int:
    """Rows of the overlay panel in frames of ``size`` (width, height)."""
    lines = panel_lines(size)
    return lines * (_font_size(size[1]) + 3) + 3 if lines else 0


def scene_size(size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) of the scene under the panel in frames of ``size``."""
    return size[0], size[1] - panel_rows(size)


class Overlay:
    """Draws the overlay on a frame of one record's replay.

    Args:
        record: The episode being filmed.
        size: (width, height) of the frames.
        control_dt: The env's control period (for the simulated time).
    """

    def __init__(self, record: EpisodeRecord, size: tuple[int, int], control_dt: float) -> None:
        self.record, self.control_dt = record, control_dt
        font_size = _font_size(size[1])
        self.font = ImageFont.load_default(size=font_size)
        self.line = font_size + 3
        self.size, self.rows = size, panel_rows(size)
        self.tally = {
            kind: sorted(step for step, event in record.meta.events if event.startswith(kind + ":"))
            for kind in TALLIED
        }
        self.tally = {kind: steps for kind, steps in self.tally.items() if steps}
        self.event_steps = [step for step, _ in record.meta.events]

    def tally_at(self, index: int) -> str:
        """``sorted 2  lost 1``: parts resolved by observation ``index`` (empty for no tally)."""
        # The record's event of action k shows with observation k + 1 (the replay's index).
        return "  ".join(
            f"{kind.replace('_', ' ')} {bisect.bisect_right(steps, index - 1)}"
            for kind, steps in self.tally.items()
        )

    def annotate(
        self, scene: np.ndarray, index: int, reward: float, total: float, recent: list[str]
    ) -> np.ndarray:
        """The frame: the panel (who, when, tally, reward, last event) above ``scene``.

        Args:
            scene: The rendered scene, `scene_size` of the frame.
            index: The observation's index in the episode.
            reward: The reward that came with it.
            total: The return so far.
            recent: Events still on screen, oldest first; the last one shows.
        """
        meta, line = self.record.meta, self.line
        tally = self.tally_at(index)
        lines = [  # most important first: narrow frames cut the end of a line
            (
                f"{meta.policy or meta.policy_id} @ {meta.site} seed {meta.seed}  "
                f"step {index}/{self.record.steps}  t {index * self.control_dt:.2f} s",
                WHITE,
            ),
            ((f"{tally}  " if tally else "") + f"reward {reward:+.3f}  return {total:+.2f}", WHITE),
        ]
        if recent:
            last = recent[-1]
            lines.append((last, ORANGE if last.startswith("violation:") else GREEN))
        else:  # the last event so far, greyed, with its step
            seen = bisect.bisect_right(self.event_steps, index - 1)
            step, event = self.record.meta.events[seen - 1] if seen else (None, "no event yet")
            lines.append((event if step is None else f"{event} (step {step + 1})", GREY))
        if not self.rows:
            return scene
        panel = Image.new("RGB", (self.size[0], self.rows), PANEL)
        draw = ImageDraw.Draw(panel)
        for row, (text, color) in enumerate(lines[: panel_lines(self.size)]):
            draw.text((4, 2 + row * line), text, fill=color, font=self.font)
        return np.concatenate([np.asarray(panel), scene], axis=0)


def end_card(record: EpisodeRecord, size: tuple[int, int]) -> np.ndarray:
    """A frame that says how the episode ended: success, or failed with its reason."""
    meta = record.meta
    success = meta.ended_by != "fault" and bool(meta.metrics.get("success_at_end"))
    width, height = size
    image = Image.new("RGB", size, (24, 24, 24))
    draw = ImageDraw.Draw(image)
    big = ImageFont.load_default(size=max(12, height // 8))
    small_size = max(9, height // 20)
    small = ImageFont.load_default(size=small_size)
    draw.text((8, height // 8), "SUCCESS" if success else "FAILED", fill=GREEN if success else RED,
              font=big)  # fmt: skip
    chars = max(12, int(width / (0.6 * small_size)))
    lines = [] if success else textwrap.wrap(meta.outcome, chars)[:3]
    lines += [
        f"{meta.policy or meta.policy_id} @ {meta.site}, seed {meta.seed}",
        f"{record.steps} steps, ended by {meta.ended_by or '?'}",
    ]
    top = height // 8 + max(12, height // 8) + small_size
    for row, text in enumerate(lines):
        draw.text((8, top + row * (small_size + 4)), text, fill=WHITE, font=small)
    return np.asarray(image)
