"""Session bookkeeping for the policy server: one record per open session."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

import grpc

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
    """

    info: SessionInfo
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_step: int = -1
    last_response: pb.ActResponse | None = None

    def restart(self, info: SessionInfo) -> None:
        """Begin a new episode: the next step is 0 again."""
        self.info = info
        self.last_step = -1
        self.last_response = None

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


class SessionTable:
    """Thread-safe map of session id to `Session`, bounded by ``max_sessions``."""

    def __init__(self, max_sessions: int) -> None:
        self._max = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, site: str, campaign: str, episode: int, seed: int | None) -> Session:
        """Create a session with a fresh random id.

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
            session = self._sessions[info.session_id] = Session(info)
        return session

    def get(self, session_id: str, rpc: str) -> Session:
        """Look up a session.

        Raises:
            StepFailure: NOT_FOUND for an unknown id.
        """
        session = self._sessions.get(session_id)
        if session is None:
            raise StepFailure(
                grpc.StatusCode.NOT_FOUND,
                f"{rpc}: session_id {session_id!r} is not open (call OpenSession first)",
                [pb.FieldError(field="session_id", expected="an open session", got=session_id)],
            )
        return session

    def pop(self, session_id: str) -> Session | None:
        """Remove and return a session (None if unknown)."""
        with self._lock:
            return self._sessions.pop(session_id, None)
