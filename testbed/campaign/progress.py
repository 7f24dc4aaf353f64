"""Progress bars: episodes within a trial, and trials + episodes across a campaign.

With a launcher that runs trials in other processes (joblib, Ray, SLURM), the launching process
shows one campaign-wide view by watching the campaign folder (records and markers are written
atomically, so counting files is exact); trial processes then keep quiet.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from testbed.episodes.records import RECORD_GLOB

#: Set in trial processes whose launching process shows the campaign-wide progress.
QUIET_ENV = "TESTBED_QUIET_TRIALS"


def _bars(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


@contextmanager
def episode_progress(trial: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """A bar over a trial's episodes; yields the function that advances it."""
    if not enabled or os.environ.get(QUIET_ENV) or total == 0:
        yield lambda: None
        return
    with _bars() as progress:
        task = progress.add_task(f"episodes {trial}", total=total)
        yield lambda: progress.advance(task)


class CampaignMonitor:
    """Shows trials finished and episodes recorded under a campaign folder until stopped.

    Args:
        campaign_dir: The campaign folder.
        trials: Number of trials the run expands to.
        episodes_per_trial: Episodes each trial runs.
        stores: The folders holding the trial folders, when not the campaign folder itself
            (per-site stores: `testbed.campaign.stores.store_roots`); looked at every time.
    """

    def __init__(
        self,
        campaign_dir: Path,
        trials: int,
        episodes_per_trial: int,
        stores: Callable[[], list[Path]] | None = None,
    ) -> None:
        self.campaign_dir = Path(campaign_dir)
        self.stores = stores or (lambda: [self.campaign_dir])
        self.trials = trials
        self.episodes = episodes_per_trial * trials
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval_s: float = 0.5) -> None:
        """Start watching in a daemon thread (nothing shown when stderr is not a terminal)."""
        self._thread = threading.Thread(target=self._watch, args=(interval_s,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (after a final refresh)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def counts(self) -> tuple[int, int]:
        """(trials finished or failed, episodes recorded) right now."""
        finished = episodes = 0
        for root in self.stores():
            for folder in root.iterdir() if root.is_dir() else ():
                finished += (folder / "DONE").is_file() or (folder / "FAILED").is_file()
                episodes += sum(1 for _ in folder.glob(RECORD_GLOB))
        return finished, episodes

    def _watch(self, interval_s: float) -> None:
        console = Console(stderr=True)
        if not console.is_terminal and not os.environ.get("TESTBED_FORCE_PROGRESS"):
            self._stop.wait()
            return
        with _bars(console) as progress:
            trials = progress.add_task("trials  ", total=self.trials)
            episodes = progress.add_task("episodes", total=self.episodes)
            while True:
                stopping = self._stop.wait(interval_s)
                finished, recorded = self.counts()
                progress.update(trials, completed=min(finished, self.trials))
                progress.update(episodes, completed=min(recorded, self.episodes))
                if stopping:
                    break
        sys.stderr.flush()
