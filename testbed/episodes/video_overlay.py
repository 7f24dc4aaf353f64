"""What a replay video draws over the scene, and the card that ends it.

The overlay names the policy, site and seed, the step and simulated time, the parts tally so
far (for a task that records ``sorted:``, ``wrong_bin:`` or ``lost:`` events) and the reward;
the most recent events show at the bottom. Both bands darken the scene rather than hide it, so
the arm stays visible under the text. The end card says success, or the episode's failure
reason, for as long as `VideoSettings.end_card_s <testbed.episodes.video.VideoSettings>` asks.
"""

from __future__ import annotations

import bisect
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from testbed.episodes.records import EpisodeRecord

#: Event kinds the overlay tallies (those a task records when it resolves a part).
TALLIED = ("sorted", "wrong_bin", "lost")
#: How much of the scene shows through a text band (0: black, 1: untouched).
SHOW_THROUGH = 0.35
WHITE, GREEN, RED, ORANGE = (255, 255, 255), (140, 230, 140), (255, 110, 100), (255, 150, 60)


class Overlay:
    """Draws the overlay on a frame of one record's replay.

    Args:
        record: The episode being filmed.
        size: (width, height) of the frames.
        control_dt: The env's control period (for the simulated time).
    """

    def __init__(self, record: EpisodeRecord, size: tuple[int, int], control_dt: float) -> None:
        self.record, self.control_dt = record, control_dt
        font_size = max(9, size[1] // 22)
        self.font = ImageFont.load_default(size=font_size)
        self.line = font_size + 3
        self.tally = {
            kind: sorted(step for step, event in record.meta.events if event.startswith(kind + ":"))
            for kind in TALLIED
        }
        self.tally = {kind: steps for kind, steps in self.tally.items() if steps}

    def tally_at(self, index: int) -> str:
        """``sorted 2  lost 1``: parts resolved by observation ``index`` (empty for no tally)."""
        # The record's event of action k shows with observation k + 1 (the replay's index).
        return "  ".join(
            f"{kind.replace('_', ' ')} {bisect.bisect_right(steps, index - 1)}"
            for kind, steps in self.tally.items()
        )

    def annotate(
        self, frame: np.ndarray, index: int, reward: float, total: float, recent: list[str]
    ) -> np.ndarray:
        """``frame`` with the header (who, when, tally, reward) and the ``recent`` events."""
        meta, line = self.record.meta, self.line
        tally = self.tally_at(index)
        header = [  # most important first: narrow frames cut the end of a line
            f"{meta.policy or meta.policy_id} @ {meta.site} seed {meta.seed}  "
            f"step {index}/{self.record.steps}  t {index * self.control_dt:.2f} s",
            (f"{tally}  " if tally else "") + f"reward {reward:+.3f}  return {total:+.2f}",
        ]
        image = _darken(frame, 0, 2 * line + 2)
        top = image.shape[0] - len(recent) * line - 2
        if recent:
            image = _darken(image, top, image.shape[0])
        picture = Image.fromarray(image)
        draw = ImageDraw.Draw(picture)
        for row, text in enumerate(header):
            draw.text((4, 2 + row * line), text, fill=WHITE, font=self.font)
        for row, text in enumerate(recent):
            color = ORANGE if text.startswith("violation:") else GREEN
            draw.text((4, top + 1 + row * line), text, fill=color, font=self.font)
        return np.asarray(picture)


def _darken(frame: np.ndarray, top: int, bottom: int) -> np.ndarray:
    out = np.array(frame, copy=True)
    out[top:bottom] = (out[top:bottom].astype(np.float32) * SHOW_THROUGH).astype(np.uint8)
    return out


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
