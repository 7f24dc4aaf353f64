"""Batch mode of a trial (``policy.mode=batch``): episodes in lockstep, one ActBatch per step.

A trial's missing episodes run ``policy.batch_size`` at a time, one env (lane) each, in one
worker. Every step makes one ``act_batch`` call for the lanes whose episode needs an action
(an action chunk still being played needs none); a finished episode is recorded and leaves the
batch, and its lane takes the next missing episode of the seed block. Each episode is stepped
by the same `EpisodeRun` as in unary mode, so its record (actions, observations, faults,
outcome) is what unary mode records for that seed with a deterministic policy.

Faults stay per episode: an item of the batch that fails (a bad action, a lost session) is that
episode's fault; a call that fails as a whole (a missed deadline, a dead server) is a fault of
every episode in it, as unary mode would record on each. An episode the policy was unreachable
for before its first step is not recorded: once no episode is in flight the connection is
recovered (a managed server restarted) and the episode runs once more; if it fails again
before its first step it counts towards ``campaign.max_unavailable_episodes``, as in unary
mode.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from testbed.campaign.progress import episode_progress
from testbed.episodes.compute import PolicyMeter
from testbed.episodes.recorder import EpisodeRecorder
from testbed.episodes.rollout import EpisodeRun
from testbed.errors import (
    PolicyAuthError,
    PolicyBatchError,
    PolicyError,
    PolicyHandshakeError,
    PolicyProtocolError,
    PolicyUnavailableError,
)
from testbed.link.policy import Policy, SessionInfo

if TYPE_CHECKING:
    from testbed.campaign.connect import PolicyConnection
    from testbed.campaign.trial import _TrialRun

#: Faults that mean "the trial cannot go on", not "this episode went wrong".
FATAL = (PolicyHandshakeError.__name__, PolicyAuthError.__name__)


@dataclass
class _Lane:
    """One env of the batch and the episode it is running (None: free)."""

    env: EpisodeRecorder
    session_id: str
    run: EpisodeRun | None = None
    index: int = 0
    seed: int = 0
    retried: bool = False
    started: float = 0.0


def run_batched(
    trial: _TrialRun,
    connection: PolicyConnection,
    todo: list[tuple[int, int]],
    envs: Sequence[EpisodeRecorder],
) -> str:
    """Run the missing episodes ``todo`` in lockstep on ``envs``.

    Returns why the trial stopped early, or ``""`` (as `_TrialRun.episodes` does).
    """
    return _Batch(trial, connection, envs).run(todo)


class _Batch:
    def __init__(
        self, trial: _TrialRun, connection: PolicyConnection, envs: Sequence[EpisodeRecorder]
    ) -> None:
        self.trial, self.connection = trial, connection
        name = trial.config.trial_name
        self.lanes = [_Lane(env, f"{name}#{k}") for k, env in enumerate(envs)]
        self.queue: deque[tuple[int, int, bool]] = deque()
        self.waiting: list[tuple[int, int]] = []  # not started: unreachable, retry later
        self.unreachable = 0
        self.skipped: list[int] = []

    def run(self, todo: list[tuple[int, int]]) -> str:
        self.queue.extend((index, seed, False) for index, seed in todo)
        campaign = self.trial.config.campaign
        with episode_progress(self.trial.config.trial_name, len(todo), campaign.progress) as bar:
            while True:
                stopped = self._fill(bar)
                live = [lane for lane in self.lanes if lane.run is not None]
                if not stopped and not live and self.waiting:
                    self._recover()
                    continue
                if stopped or not live:
                    break
                self._ask([lane for lane in live if lane.run and lane.run.wants_action])
                for lane in live:
                    assert lane.run is not None
                    if not lane.run.done:
                        lane.run.step()
                    if lane.run.done:
                        finished = self._finish(lane, bar)
                        stopped = stopped or finished
                if stopped:
                    break
        if stopped:
            return stopped
        if self.skipped:
            return (
                f"policy unreachable for episode(s) {sorted(self.skipped)}; rerun the campaign "
                "to run them"
            )
        return ""

    def _fill(self, bar: Any) -> str:
        """Start the next episodes on free lanes (none while an outage is suspected)."""
        for lane in self.lanes:
            while lane.run is None and self.queue and not self.waiting:
                stopped = self._start(lane, bar)
                if stopped:
                    return stopped
        return ""

    def _start(self, lane: _Lane, bar: Any) -> str:
        """Start the next missing episode on ``lane`` (recorded at once if it ends at once)."""
        lane.index, lane.seed, lane.retried = self.queue.popleft()
        config = self.trial.config
        session = SessionInfo(
            session_id=lane.session_id,
            site=config.site.id,
            campaign=config.campaign.name,
            episode=lane.index,
            seed=lane.seed,
        )
        lane.started = time.perf_counter()
        lane.run = EpisodeRun(
            lane.env,
            session,
            self.trial.policy_id,
            config.task.max_steps,
            config.campaign.max_consecutive_faults,
        )
        lane.run.start(self._policy)
        if lane.run.done:
            return self._finish(lane, bar)
        return ""

    @property
    def _policy(self) -> Policy:
        assert self.connection.policy is not None
        return self.connection.policy

    def _ask(self, lanes: list[_Lane]) -> None:
        """One batched policy call for ``lanes``; each episode takes its own answer."""
        if not lanes:
            return
        runs = [lane.run for lane in lanes if lane.run is not None]
        calls = PolicyMeter(self._policy, self.trial.meter)
        act_batch = getattr(self._policy, "act_batch", None)
        if act_batch is None:  # an in-process policy without act_batch: one act each
            for run in runs:
                start = time.perf_counter()
                mark = calls.start()
                answer: Any
                try:
                    answer = self._policy.act(run.session, run.observation)
                except PolicyError as exc:
                    answer = exc
                latency_ms = (time.perf_counter() - start) * 1000.0
                run.answer(answer, latency_ms, calls.stop(mark, [run.session])[0])
            return
        start = time.perf_counter()
        mark = calls.start()
        answers = _batch_answers(act_batch, runs)
        latency_ms = (time.perf_counter() - start) * 1000.0
        usages = calls.stop(mark, [run.session for run in runs])  # one call: equal shares
        for run, answer, usage in zip(runs, answers, usages, strict=True):
            run.answer(answer, latency_ms, usage)

    def _finish(self, lane: _Lane, bar: Any) -> str:
        """Record the lane's finished episode (or set it aside) and free the lane."""
        assert lane.run is not None
        result = lane.run.result
        lane.run = None
        kind = result.faults[0][1] if result.faults and result.steps == 0 else ""
        if kind in FATAL:
            return f"{kind}: {result.faults[0][2]}"
        never_started = result.steps == 0 and result.ended_by == "fault"
        if lane.retried and never_started:
            return self._unreachable(lane.index, result.faults[0][2])
        if kind == PolicyUnavailableError.__name__:
            self.waiting.append((lane.index, lane.seed))
            return ""
        self.unreachable = 0
        self.trial.save(lane.index, lane.seed, result, lane.env, time.perf_counter() - lane.started)
        bar()
        return ""

    def _recover(self) -> None:
        """No episode in flight and some never started: recover, then retry them once.

        They are retried even when nothing was restarted (a remote server): an outage that hit
        a whole batch is not theirs alone, and the retry's reset waits for the server within
        ``control_timeout_s``. A retry that fails before its first step counts as unreachable.
        """
        self.connection.recover()
        waiting, self.waiting = self.waiting, []
        self.queue.extendleft((i, s, True) for i, s in reversed(waiting))

    def _unreachable(self, index: int, message: str) -> str:
        self.unreachable += 1
        if self.unreachable >= self.trial.config.campaign.max_unavailable_episodes:
            return f"policy unreachable: {message}"
        self.skipped.append(index)
        return ""


def _batch_answers(act_batch: Any, runs: list[EpisodeRun]) -> list[Any]:
    """What ``act_batch`` answered for each run: an action or the `PolicyError` of its item."""
    sessions = [run.session for run in runs]
    observations: list[Mapping[str, np.ndarray]] = [run.observation for run in runs]
    try:
        actions = list(act_batch(sessions, observations))
    except PolicyBatchError as exc:
        return [exc.errors.get(i, exc.actions[i]) for i in range(len(runs))]
    except PolicyError as exc:  # the call as a whole: a fault of every episode in it
        return [exc] * len(runs)
    if len(actions) != len(runs):
        error = PolicyProtocolError(f"act_batch: expected {len(runs)} actions, got {len(actions)}")
        return [error] * len(runs)
    return actions
