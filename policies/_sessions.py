"""Session bookkeeping for the policy server: one record per open session."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import grpc
import numpy as np

from protos.specs import SessionInfo
from protos.v1 import policy_service_pb2 as pb


class StepFailure(Exception):
    """A request that cannot be served; becomes a gRPC status (unary) or an in-band status.

    Attributes:
        code: The gRPC status code.
        errors: Field-level detail, if any.
    """

    def __init__(
        self, code: grpc.StatusCode, message: str, errors: list[pb.FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors or []

    def status(self) -> pb.StepStatus:
        """Return the in-band form of this failure."""
        return pb.StepStatus(code=self.code.value[0], message=self.message, errors=self.errors)


@dataclass
class Session:
    """Server-side state of one session.

    Attributes:
        info: What the policy sees (id, site, campaign, episode, seed).
        lock: Serialises steps of this session.
        last_step: The last step answered (-1 before step 0).
        last_response: The reply to `last_step`, replayed when that step is re-sent.
        last_observation: The decoded observation `last_step` was answered for.
        last_used: `time.monotonic` of the last request that named the session.
        packed: Opened with ``capabilities.packed_observations`` (protocol 1.1): its requests
            may carry ``packed_observation``.
    """

    info: SessionInfo
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_step: int = -1
    last_response: pb.ActResponse | None = None
    last_observation: dict[str, np.ndarray] | None = None
    last_used: float = field(default_factory=time.monotonic)
    packed: bool = False

    def restart(self, info: SessionInfo) -> None:
        """Begin a new episode: the next step is 0 again."""
        self.info = info
        self.last_step = -1
        self.last_response = None
        self.last_observation = None

    def cached_or_check(self, step: int) -> pb.ActResponse | None:
        """Return the cached reply if ``step`` repeats the last one; raise if out of order.

        Steps strictly increase; gaps are allowed (a client that gave up on a step moves on).
        """
        if step == self.last_step and self.last_response is not None:
            return self.last_response
        if step <= self.last_step:
            raise StepFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"step: expected > {self.last_step} (or {self.last_step} to replay), got {step}",
                [pb.FieldError(field="step", expected=f"> {self.last_step}", got=str(step))],
            )
        return None

    def check_retry(self, step: int, observation: dict[str, np.ndarray]) -> None:
        """Pass if a re-sent ``step`` carries the observation it was answered for.

        Raises:
            StepFailure: FAILED_PRECONDITION naming the session, the step and the first field
                whose values differ (bit for bit).
        """
        last = self.last_observation or {}
        for name, array in observation.items():
            before = last.get(name)
            if before is None or before.tobytes() != array.tobytes():
                where = f"observation.{name}"
                raise StepFailure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"session {self.info.session_id!r} step {step} was already answered for "
                    f"another observation ({where} differs): re-send the same observation to "
                    f"get the same reply, or send a step > {step}",
                    [
                        pb.FieldError(
                            field=where,
                            expected=f"the values step {step} was answered for",
                            got="other values",
                        )
                    ],
                )


_REAPED_MEMORY = 4096  # ids of reaped sessions remembered, to say why a session is gone


def _shown(text: str, limit: int = 64) -> str:
    """``repr`` of a client-sent string, cut short.

    Error details travel in gRPC metadata, where a long echo exceeds the 8 KiB limit and the
    client then sees RESOURCE_EXHAUSTED instead of the real status.
    """
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


class SessionTable:
    """Thread-safe map of session id to `Session`, bounded by ``max_sessions``."""

    def __init__(self, max_sessions: int) -> None:
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}
        self._reaped: OrderedDict[str, float] = OrderedDict()  # id -> idle seconds
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(
        self, site: str, campaign: str, episode: int, seed: int | None, *, packed: bool = False
    ) -> Session:
        """Create a session with a fresh random id (``packed``: it negotiated packing).

        Raises:
            StepFailure: RESOURCE_EXHAUSTED when ``max_sessions`` are open.
        """
        info = SessionInfo(uuid.uuid4().hex, site, campaign, episode, seed)
        with self._lock:
            if len(self._sessions) >= self._max:
                raise StepFailure(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"OpenSession: {self._max} sessions open; close some first",
                )
            session = self._sessions[info.session_id] = Session(info, packed=packed)
        return session

    def get(self, session_id: str, rpc: str) -> Session:
        """Look up a session.

        Raises:
            StepFailure: NOT_FOUND for an unknown id.
        """
        session = self._sessions.get(session_id)
        if session is None:
            idle = self._reaped.get(session_id)
            why = (
                f"was closed after {idle:g} s without a request (session idle timeout)"
                if idle is not None
                else "is not open"
            )
            shown = _shown(session_id)
            raise StepFailure(
                grpc.StatusCode.NOT_FOUND,
                f"{rpc}: session_id {shown} {why}; call OpenSession first",
                [pb.FieldError(field="session_id", expected="an open session", got=shown)],
            )
        session.last_used = time.monotonic()
        return session

    def pop(self, session_id: str) -> Session | None:
        """Remove and return a session (None if unknown)."""
        with self._lock:
            return self._sessions.pop(session_id, None)

    def reap(self, idle_s: float) -> list[Session]:
        """Remove and return the sessions idle for more than ``idle_s`` (busy ones are kept)."""
        now = time.monotonic()
        with self._lock:
            stale = [
                s
                for s in self._sessions.values()
                if now - s.last_used > idle_s and not s.lock.locked()
            ]
            for session in stale:
                del self._sessions[session.info.session_id]
                self._reaped[session.info.session_id] = idle_s
            while len(self._reaped) > _REAPED_MEMORY:
                self._reaped.popitem(last=False)
        return stale
