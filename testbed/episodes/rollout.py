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
    """

    session: SessionInfo
    policy_id: str
    steps: int = 0
    total_reward: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    faults: list[tuple[int, str, str]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    ended_by: str = ""

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
    """
    if policy_id is None:
        spec = policy.spec()
        policy_id = f"{spec.policy_id}@{spec.version}"
    contract = contract_of(env)  # before anything runs: the env must offer episode_summary
    result = EpisodeResult(session=session, policy_id=policy_id)
    observation, _ = env.reset(seed=session.seed)
    try:
        policy.reset(session)
    except PolicyError as exc:
        result.faults.append((0, type(exc).__name__, str(exc)))
        result.ended_by = "fault"
        return result
    pending: deque[np.ndarray] = deque()
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"run_episode: expected a Box action space, got {space}")
    hold = np.zeros(space.shape, dtype=space.dtype)
    limit = max_steps if max_steps is not None else 10**9
    fault_limit = max_consecutive_faults if max_consecutive_faults is not None else 10**9
    consecutive = 0
    validate = ActionValidator(space)
    while result.steps < limit:
        if not pending:
            chunk = _ask(policy, session, observation, validate, result)
            if chunk is None and result.ended_by == "fault":
                break
            consecutive = consecutive + 1 if chunk is None else 0
            if consecutive >= fault_limit:
                result.faults.append(
                    (result.steps, FAULT_LIMIT, f"{consecutive} faulty policy calls in a row")
                )
                result.ended_by = "fault"
                break
            pending.extend(chunk if chunk is not None else [hold])
        action = pending.popleft()
        hold = _holding(action)
        observation, reward, terminated, truncated, info = env.step(action)
        result.steps += 1
        result.total_reward += float(reward)
        if terminated or truncated:
            result.metrics = dict(info.get("episode_metrics", {}))
            result.ended_by = "terminated" if terminated else "truncated"
            break
    else:
        result.ended_by = "max_steps"
        result.metrics = dict(contract.episode_summary())  # score what happened before the cap
    return result


def _ask(
    policy: Policy,
    session: SessionInfo,
    observation: dict[str, np.ndarray],
    validate: ActionValidator,
    result: EpisodeResult,
) -> np.ndarray | None:
    """One policy call; returns the validated action chunk, or None after a recorded fault."""
    start = time.perf_counter()
    try:
        raw = policy.act(session, observation)
        action = validate(raw)
    except InvalidActionError as exc:
        result.faults.append((result.steps, f"invalid_action:{exc.reason}", str(exc)))
        return None
    except PolicyDeadlineError as exc:
        result.faults.append((result.steps, "deadline", str(exc)))
        return None
    except PolicyError as exc:
        result.faults.append((result.steps, type(exc).__name__, str(exc)))
        result.ended_by = "fault"
        return None
    finally:
        result.latencies_ms.append((time.perf_counter() - start) * 1000.0)
    return action.reshape((-1, *validate.space.shape))


def _holding(action: np.ndarray) -> np.ndarray:
    """The action that holds position after `action`: no motion, same gripper command."""
    hold = np.zeros_like(action)
    hold[-1] = action[-1]
    return hold
