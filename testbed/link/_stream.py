"""Client side of ``ActStream`` for `testbed.link.client` (its private helper).

A sync gRPC response iterator cannot time out, so a watchdog thread cancels the call when a
step's deadline passes; the waiting ``next()`` then raises and becomes `PolicyDeadlineError`,
and the next step opens a fresh stream. The hot path stays on the caller's thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from testbed.errors import (
    InvalidActionError,
    PolicyAuthError,
    PolicyDeadlineError,
    PolicyError,
    PolicyProtocolError,
    PolicyUnavailableError,
)

_END = object()
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_error(rpc: str, code: int | grpc.StatusCode, message: str) -> PolicyError:
    """Return the typed error for a gRPC status (a `grpc.StatusCode` or its in-band number)."""
    if isinstance(code, int):
        code = _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    text = f"{rpc}: {message}" if not message.startswith(f"{rpc}:") else message
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PolicyDeadlineError(text)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return PolicyAuthError(text)
    if code == grpc.StatusCode.NOT_FOUND:
        return PolicyUnavailableError(f"{text} (session lost: did the server restart?)")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return PolicyUnavailableError(text)
    if code == grpc.StatusCode.INTERNAL and _BAD_ACTION in message:
        return InvalidActionError(_bad_action_reason(message), text)
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    ):
        return PolicyProtocolError(f"{text} ({code.name})")
    return PolicyError(f"{text} ({code.name})")


# A policy server reports its own policy's bad action as INTERNAL with this text before the
# field (docs/policy_service.md), e.g. "policy 'p' returned a bad action: action.shape: ...".
_BAD_ACTION = " returned a bad action: "


def _bad_action_reason(message: str) -> str:
    """The `InvalidActionError` reason of a server-reported bad action."""
    detail = message.split(_BAD_ACTION, 1)[1]
    if detail.startswith("action.shape:"):
        return "shape"
    if detail.startswith("action.dtype:"):
        return "dtype"
    return "non-finite" if detail.startswith("action: expected finite") else "out-of-bounds"


def map_rpc_error(rpc: str, error: grpc.RpcError, timeout_s: float | None = None) -> PolicyError:
    """Translate a `grpc.RpcError` raised by ``rpc`` into the typed error."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and timeout_s is not None:
        return PolicyDeadlineError(f"{rpc}: no answer within {timeout_s * 1000:.0f} ms")
    return status_error(rpc, code, details)


class ActStream:
    """One open ``ActStream`` call: send a step, wait for its reply within a deadline."""

    def __init__(
        self,
        method: Callable[..., Any],
        metadata: Sequence[tuple[str, str]] | None,
        poll_s: float = 0.005,
    ) -> None:
        """Open the stream.

        Args:
            method: The stream-stream multi-callable (requests as serialized bytes).
            metadata: Call metadata (the bearer token).
            poll_s: Watchdog resolution: a deadline fires at most this late.
        """
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._responses = method(iter(self._requests.get, _END), metadata=metadata)
        self._lock = threading.Lock()
        self._armed: tuple[float] | None = None
        self._expired = False
        self._closed = threading.Event()
        self._poll_s = poll_s
        self.broken = False
        threading.Thread(target=self._watch, name="actstream-watchdog", daemon=True).start()

    def exchange(self, request: Any, deadline_s: float) -> Any:
        """Send ``request`` (an ActRequest) and return the reply to its step.

        Raises:
            PolicyDeadlineError: No reply within ``deadline_s`` (the stream is then broken).
            PolicyUnavailableError: The stream or the server went away.
        """
        session_id, step = request.session_id, request.step
        self._requests.put(request.SerializeToString())
        armed = (time.monotonic() + deadline_s,)
        self._armed = armed
        try:
            while True:
                reply = next(self._responses)
                if reply.step == step and reply.session_id == session_id:
                    return reply
                # Otherwise a late reply to a step given up on earlier: drop it.
        except StopIteration:
            self.broken = True
            raise PolicyUnavailableError("ActStream: the server ended the stream") from None
        except grpc.RpcError as exc:
            self.broken = True
            if self._expired:
                raise PolicyDeadlineError(
                    f"ActStream: no answer within {deadline_s * 1000:.0f} ms"
                ) from None
            raise map_rpc_error("ActStream", exc) from None
        finally:
            with self._lock:
                self._armed = None

    def _watch(self) -> None:
        while not self._closed.is_set():
            armed = self._armed
            if armed is None:
                self._closed.wait(self._poll_s)
                continue
            remaining = armed[0] - time.monotonic()
            if remaining > 0:
                self._closed.wait(min(remaining, self._poll_s))
                continue
            with self._lock:
                if self._armed is armed:  # still waiting on the same step
                    self._expired = True
                    self.broken = True
                    self._responses.cancel()

    def close(self) -> None:
        """End the stream and the watchdog."""
        self._closed.set()
        self._requests.put(_END)
        self._responses.cancel()
