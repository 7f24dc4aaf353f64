"""Check a running policy server (what ``testbed check-policy`` runs).

First the conformance suite (`testbed.link.conformance`: health, GetSpec, the handshake with a
real env's spaces, and every other promise of the contract, on the wire), then what the
testbed's own client does in a campaign: a bounded episode over unary ``Act``, its deadline
enforcement, and, where advertised, episodes over ``ActStream`` and ``ActBatch``. Each check
yields a row: passed, failed (with the error) or skipped (not advertised).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from testbed.errors import PolicyDeadlineError, PolicyError
from testbed.link._conformance_checks import CHECKS, STOP_ON_FAILURE
from testbed.link.client import RemotePolicy
from testbed.link.conformance import CheckRow, run_conformance
from testbed.link.policy import SessionInfo, spaces_to_specs

ENV_ID = "Testbed/ConveyorSort-v0"


@dataclass
class _Check:
    """Settings and state shared by the checks of one run."""

    address: str
    site: str
    env_id: str
    token: str | None
    tls_ca: Path | None
    steps: int
    deadline_s: float
    env: Any = None
    rows: list[tuple[str, bool | None, str]] = field(default_factory=list)

    def client(self, mode: str = "unary", deadline_s: float | None = None) -> RemotePolicy:
        return RemotePolicy(
            self.address,
            observation_space=self.env.observation_space,
            action_space=self.env.action_space,
            mode=mode,  # type: ignore[arg-type]
            tls_ca=self.tls_ca,
            token=self.token,
            deadline_s=deadline_s or self.deadline_s,
            connect_timeout_s=5.0,
        )

    def run(self, name: str, check: Callable[[], str | None]) -> bool:
        """Run one check; a PolicyError fails it, a None result skips it."""
        try:
            detail = check()
        except (PolicyError, OSError, ValueError) as exc:
            self.rows.append((name, False, f"{type(exc).__name__}: {exc}"))
            return False
        self.rows.append((name, None if detail is None else True, detail or "not advertised"))
        return True


def _episode(check: _Check, mode: str, sessions: int = 1) -> str:
    """Run a short bounded episode (``sessions`` in lockstep) and report the latency."""
    with check.client(mode) as policy:
        infos = [
            SessionInfo(f"check-{mode}-{i}", check.site, "check-policy", 0, i)
            for i in range(sessions)
        ]
        for info in infos:
            policy.reset(info)
        form = "packed" if policy.uses_packed(infos[0]) else "named"
        observation = check.env.reset(seed=0)[0]
        latencies = []
        for _ in range(check.steps):
            start = time.perf_counter()
            if mode == "batch":
                actions = policy.act_batch(infos, [observation] * sessions)
            else:
                actions = [policy.act(infos[0], observation)]
            latencies.append(time.perf_counter() - start)
            # One env drives every session: their observations only need to be valid.
            action = (
                actions[0] if actions[0].shape == check.env.action_space.shape else actions[0][0]
            )
            observation, _, terminated, truncated, _ = check.env.step(action)
            if terminated or truncated:
                observation = check.env.reset(seed=0)[0]
    p50, p99 = np.percentile(np.asarray(latencies) * 1000, [50, 99])
    return (
        f"{check.steps} steps x {sessions} session(s), {form} observations, all actions "
        f"valid, p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )


def _deadline(check: _Check) -> str:
    """Check that a call given an impossible deadline fails fast with PolicyDeadlineError."""
    with check.client("unary", deadline_s=1e-6) as probe:
        info = SessionInfo("check-deadline", check.site, "check-policy", 0, 0)
        probe.reset(info)
        start = time.monotonic()
        try:
            probe.act(info, check.env.reset(seed=0)[0])
        except PolicyDeadlineError:
            elapsed = (time.monotonic() - start) * 1000
            return f"1 us deadline -> PolicyDeadlineError after {elapsed:.1f} ms"
    raise PolicyError("an act with a 1 us deadline succeeded: deadlines are not enforced")


def check_policy_server(
    address: str,
    site: str,
    *,
    token: str | None = None,
    tls_ca: Path | None = None,
    steps: int = 50,
    deadline_s: float = 1.0,
    env_id: str = ENV_ID,
    env_kwargs: dict[str, Any] | None = None,
) -> list[CheckRow]:
    """Run every check against the server at ``address`` with ``env_id``'s spaces at ``site``.

    ``env_kwargs`` are further env keyword arguments (``camera_obs`` offers image fields).

    A failed health check, GetSpec or handshake stops the run (the later checks could not
    pass).
    """
    import gymnasium

    import envs  # noqa: F401  # registers the env ids

    check = _Check(address, site, env_id, token, tls_ca, steps, deadline_s)
    check.env = gymnasium.make(env_id, site=site, **(env_kwargs or {}))
    try:
        observation, action = spaces_to_specs(check.env.observation_space, check.env.action_space)
        check.rows = run_conformance(address, observation, action, site=site, token=token,
                                     tls_ca=tls_ca, timeout_s=max(5.0, deadline_s))  # fmt: skip
        stopped = {name for name, ok, _ in check.rows if ok is False} & set(STOP_ON_FAILURE)
        if not stopped and len(check.rows) == len(CHECKS):
            _client_checks(check)
    finally:
        check.env.close()
    return check.rows


def _client_checks(check: _Check) -> None:
    with check.client() as policy:
        caps = policy.spec().capabilities
    check.run("episode (unary Act)", lambda: _episode(check, "unary"))
    check.run("deadline", lambda: _deadline(check))
    check.run("episode (ActStream)", lambda: _episode(check, "stream") if caps.streaming else None)
    batch = min(4, caps.max_batch)
    check.run(
        "episode (ActBatch)",
        lambda: _episode(check, "batch", batch) if caps.batching and batch else None,
    )
