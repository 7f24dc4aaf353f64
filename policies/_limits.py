"""Limits a shared policy server enforces: requests per second per team, idle sessions.

- `RateLimiter`: a token bucket per caller (the team its bearer token names; without tokens,
  the peer's host). Over the limit a call gets RESOURCE_EXHAUSTED saying when to retry.
- `CallGuard`: what the servicer asks on every request: who is calling, and may they.
- `SessionReaper`: a background thread that closes sessions idle for longer than a timeout, so
  clients that vanish do not hold session slots forever.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import grpc

from policies._auth import TeamTokens
from policies._sessions import Session, SessionTable, StepFailure

logger = logging.getLogger("policies.server")


class RateLimiter:
    """Token buckets: each caller may make ``rate`` requests per second, ``burst`` at once.

    Args:
        rate: Sustained requests per second per caller (> 0).
        burst: Bucket size; defaults to ``rate`` rounded up (at least 1).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rps_per_token: expected a finite number > 0, got {rate!r}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate)))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Spend one token of ``caller``'s bucket.

        Returns:
            0.0 if the request is admitted, else the seconds until a token is available.
        """
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate


class CallGuard:
    """Names the caller of a request and applies its rate limit.

    Args:
        tokens: The teams' tokens (a call's team names it); None or empty: callers are named
            by their peer host.
        limiter: Requests-per-second limit per caller; None: unlimited.
    """

    def __init__(self, tokens: TeamTokens | None, limiter: RateLimiter | None) -> None:
        self._tokens = tokens if tokens else None
        self._limiter = limiter

    def caller(self, context: grpc.ServicerContext) -> str:
        """``team <name>`` for an authenticated call, else ``peer <host>``."""
        if self._tokens is not None:
            team = self._tokens.team_of(context.invocation_metadata())
            if team is not None:
                return f"team {team}"
        peer = context.peer() or "unknown"
        return f"peer {peer.rsplit(':', 1)[0]}"  # ipv4:127.0.0.1:51234 -> ipv4:127.0.0.1

    def admit(self, context: grpc.ServicerContext, rpc: str) -> None:
        """Pass if the caller's rate allows one more request (always, without a limit).

        Raises:
            StepFailure: RESOURCE_EXHAUSTED, naming the limit and when to retry.
        """
        if self._limiter is None:
            return
        caller = self.caller(context)
        wait = self._limiter.take(caller)
        if wait > 0:
            raise StepFailure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{rpc}: {caller} is over its limit of {self._limiter.rate:g} requests per "
                f"second (burst {self._limiter.burst:g}); retry in {wait * 1000:.0f} ms",
            )


class SessionReaper:
    """Closes sessions that saw no request for ``idle_s`` seconds, checking a few times a second.

    Args:
        sessions: The server's session table.
        idle_s: Idle time after which a session is closed (> 0).
        on_close: Called with each reaped session (e.g. the policy's ``close``); its errors are
            logged, never raised.
    """

    def __init__(
        self, sessions: SessionTable, idle_s: float, on_close: Callable[[Session], None]
    ) -> None:
        if not idle_s > 0 or not math.isfinite(idle_s):
            raise ValueError(f"session_idle_s: expected a finite number > 0, got {idle_s!r}")
        self._sessions, self._idle_s, self._on_close = sessions, idle_s, on_close
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-reaper", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (bounded wait)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        period = min(self._idle_s / 4, 1.0)
        while not self._stop.wait(period):
            for session in self._sessions.reap(self._idle_s):
                logger.info(
                    "session %s closed after %.0f s idle", session.info.session_id, self._idle_s
                )
                try:
                    self._on_close(session)
                except Exception:  # a policy's close() must not stop the reaper
                    logger.exception("close of idle session %s raised", session.info.session_id)
