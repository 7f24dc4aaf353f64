"""Run one episode of a Gymnasium env with any `Policy`, recording faults instead of crashing.

Every action is validated before the simulator sees it. A bad action or a missed deadline is
recorded on the episode and the robot holds position (no motion, suction unchanged); a policy
that becomes unavailable ends the episode cleanly with the fault recorded. Every result has an
outcome reason (`EpisodeResult.outcome`): ``policy fault: <kind>`` when a fault ended it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from protos.compute import ComputeMeter, ComputeUsage
from testbed.episodes.compute import ComputeTally, PolicyMeter
from testbed.episodes.env_contract import contract_of
from testbed.episodes.outcomes import FAULT_LIMIT, outcome_reason
from testbed.errors import InvalidActionError, PolicyDeadlineError, PolicyError
from testbed.link.policy import ActionValidator, Policy, SessionInfo


@dataclass
class EpisodeResult:
    """Outcome of one episode.

    Attributes:
        session: Who ran it (site, episode index, seed).
        policy_id: The policy's id and version (``id@version``).
        steps: Control steps taken.
        total_reward: Sum of rewards.
        metrics: The env's episode summary (``info["episode_metrics"]``), if it ended normally.
        faults: One ``(step, kind, message)`` per recorded fault.
        latencies_ms: Wall time of each policy call.
        ended_by: ``terminated``, ``truncated``, ``fault`` or ``max_steps``.
        compute: The policy's compute, call by call (`testbed.episodes.compute`).
    """

    session: SessionInfo
    policy_id: str
    steps: int = 0
    total_reward: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    faults: list[tuple[int, str, str]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    ended_by: str = ""
    compute: ComputeTally = field(default_factory=ComputeTally)

    @property
    def success(self) -> bool:
        """``success_at_end`` of the episode (False if it ended on a fault)."""
        return bool(self.metrics.get("success_at_end", False))

    @property
    def outcome(self) -> str:
        """Why the episode ended as it did (`testbed.episodes.outcomes.outcome_reason`).

        ``success``; ``policy fault: <kind>`` when a fault ended it (``policy fault:
        unavailable``, ``policy fault: deadline (20 faulty policy calls in a row)``); else
        the env summary's ``outcome`` (or one derived from its part counts).
        """
        faults = [(kind, message) for _, kind, message in self.faults]
        return outcome_reason(self.ended_by, faults, self.metrics)


def run_episode(
    env: gym.Env,
    policy: Policy,
    session: SessionInfo,
    *,
    max_steps: int | None = None,
    max_consecutive_faults: int | None = None,
    policy_id: str | None = None,
    meter: ComputeMeter | PolicyMeter | None = None,
) -> EpisodeResult:
    """Reset `env` with the session's seed and step it with `policy` until the episode ends.

    Args:
        env: The environment (offering `envs.contract.CellContract`).
        policy: Anything satisfying `Policy`.
        session: Who runs the episode (its seed seeds ``env.reset``).
        max_steps: Stop after this many steps (``ended_by="max_steps"``); None: no cap.
        max_consecutive_faults: End the episode (``ended_by="fault"``) after this many faulty
            policy calls in a row, so a policy that stopped answering cannot stall a campaign
            for one deadline per step; None: no limit.
        policy_id: The policy's ``id@version`` if already known (saves a GetSpec call).
        meter: Measures each call's compute (`testbed.episodes.compute.PolicyMeter`; a
            `ComputeMeter` is wrapped in one); None: the default meter.
    """
    calls = meter if isinstance(meter, PolicyMeter) else PolicyMeter(policy, meter)
    if policy_id is None:
        spec = policy.spec()
        policy_id = f"{spec.policy_id}@{spec.version}"
    run = EpisodeRun(env, session, policy_id, max_steps, max_consecutive_faults)
    run.start(policy)
    while not run.done:
        if run.wants_action:
            start = time.perf_counter()
            mark = calls.start()
            answer: Any
            try:
                answer = policy.act(session, run.observation)
            except PolicyError as exc:
                answer = exc
            latency_ms = (time.perf_counter() - start) * 1000.0
            run.answer(answer, latency_ms, calls.stop(mark, [session])[0])
        else:
            run.step()
    return run.result


class EpisodeRun:
    """One episode as a step machine, so one loop can drive several episodes in lockstep.

    `run_episode` drives one; a batched trial (`testbed.campaign.batch`) drives several with one
    ``act_batch`` call per step. Both go through the same transitions, so an episode records
    the same actions, observations, faults and outcome whichever loop ran it.

    Use: `start`, then while not `done`: if `wants_action`, `answer` with what the policy
    returned for `observation` (an action, or the `PolicyError` it raised); else `step`.

    Args:
        env: The environment (offering `envs.contract.CellContract`).
        session: Who runs the episode (its seed seeds ``env.reset``).
        policy_id: The policy's ``id@version``.
        max_steps: See `run_episode`.
        max_consecutive_faults: See `run_episode`.
    """

    def __init__(
        self,
        env: gym.Env,
        session: SessionInfo,
        policy_id: str,
        max_steps: int | None = None,
        max_consecutive_faults: int | None = None,
    ) -> None:
        self.env = env
        self.session = session
        self._contract = contract_of(env)  # before anything runs: the env must offer it
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"run_episode: expected a Box action space, got {space}")
        self._validate = ActionValidator(space)
        self._hold = np.zeros(space.shape, dtype=space.dtype)
        self._limit = max_steps if max_steps is not None else 10**9
        self._fault_limit = max_consecutive_faults if max_consecutive_faults is not None else 10**9
        self._consecutive = 0
        self._pending: deque[np.ndarray] = deque()
        self.result = EpisodeResult(session=session, policy_id=policy_id)
        self.observation: dict[str, np.ndarray] = {}
        self.done = False

    @property
    def wants_action(self) -> bool:
        """True when the next step needs a policy call (no action of a chunk is left)."""
        return not self.done and not self._pending

    def start(self, policy: Policy) -> None:
        """Reset the env with the session's seed, then the policy's session.

        A `PolicyError` from the policy's reset ends the episode at step 0 with the fault.
        """
        self.observation, _ = self.env.reset(seed=self.session.seed)
        try:
            policy.reset(self.session)
        except PolicyError as exc:
            self._end_on(exc)
            return
        self._check_cap()

    def answer(self, answer: Any, latency_ms: float, compute: ComputeUsage | None = None) -> None:
        """Take the policy's answer for `observation`: an action (chunk) or a `PolicyError`.

        A bad action or a missed deadline is a recorded fault and the robot holds position
        (after ``max_consecutive_faults`` of them in a row the episode ends); any other
        `PolicyError` ends the episode with the fault. ``compute`` is what the call cost
        (None: not measured); it counts the actions of a valid answer only.
        """
        result = self.result
        result.latencies_ms.append(latency_ms)
        chunk = None
        try:
            if isinstance(answer, PolicyError):
                raise answer
            chunk = self._validate(answer).reshape((-1, *self._validate.space.shape))
        except InvalidActionError as exc:
            result.faults.append((result.steps, f"invalid_action:{exc.reason}", str(exc)))
        except PolicyDeadlineError as exc:
            result.faults.append((result.steps, "deadline", str(exc)))
        except PolicyError as exc:
            result.compute.add(compute, 0)
            self._end_on(exc)
            return
        result.compute.add(compute, len(chunk) if chunk is not None else 0)
        self._consecutive = self._consecutive + 1 if chunk is None else 0
        if self._consecutive >= self._fault_limit:
            message = f"{self._consecutive} faulty policy calls in a row"
            result.faults.append((result.steps, FAULT_LIMIT, message))
            self._finish("fault")
            return
        self._pending.extend(chunk if chunk is not None else [self._hold])

    def step(self) -> None:
        """Apply the next pending action to the env and check whether the episode ended."""
        action = self._pending.popleft()
        self._hold = _holding(action)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.observation = observation
        result = self.result
        result.steps += 1
        result.total_reward += float(reward)
        if terminated or truncated:
            result.metrics = dict(info.get("episode_metrics", {}))
            self._finish("terminated" if terminated else "truncated")
            return
        self._check_cap()

    def _check_cap(self) -> None:
        if self.result.steps >= self._limit:
            self.result.metrics = dict(self._contract.episode_summary())  # score what happened
            self._finish("max_steps")

    def _end_on(self, exc: PolicyError) -> None:
        self.result.faults.append((self.result.steps, type(exc).__name__, str(exc)))
        self._finish("fault")

    def _finish(self, ended_by: str) -> None:
        self.result.ended_by = ended_by
        self.done = True
        self._pending.clear()


def _holding(action: np.ndarray) -> np.ndarray:
    """The action that holds position after `action`: no motion, same gripper command."""
    hold = np.zeros_like(action)
    hold[-1] = action[-1]
    return hold
