"""The orchestrator's error hierarchy: everything `testbed` raises derives from TestbedError."""

from __future__ import annotations


class TestbedError(Exception):
    """Base class for errors raised by the testbed orchestrator."""

    __test__ = False  # not a pytest test class despite the name


class PolicyError(TestbedError):
    """A policy (in-process or remote) failed to produce a usable action."""


class PolicyHandshakeError(PolicyError):
    """The policy server rejected the session: spaces, version or capabilities do not match.

    Attributes:
        field_errors: One ``(field, expected, got)`` per mismatch, as reported by the server.
    """

    def __init__(self, message: str, field_errors: list[tuple[str, str, str]]) -> None:
        lines = [f"  {f}: expected {e}, got {g}" for f, e, g in field_errors]
        super().__init__("\n".join([message, *lines]))
        self.field_errors = field_errors


class PolicyDeadlineError(PolicyError):
    """The policy did not answer within its deadline."""


class PolicyUnavailableError(PolicyError):
    """The policy server cannot be reached, or restarted and lost the session."""


class PolicyAuthError(PolicyError):
    """The policy server refused the credentials (token or client certificate)."""


class PolicyProtocolError(PolicyError):
    """The policy server broke the contract (bad request reported, malformed reply, bad step)."""


class InvalidActionError(PolicyError):
    """An action failed validation (shape, dtype, non-finite or out of bounds).

    Attributes:
        reason: One of ``shape``, ``dtype``, ``non-finite``, ``out-of-bounds``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"invalid action ({reason}): {message}")
        self.reason = reason


class PolicyBatchError(PolicyError):
    """Some items of a batched call failed; the others succeeded.

    Attributes:
        errors: Index in the batch -> the error of that item.
        actions: Index in the batch -> the validated action, or None where it failed.
    """

    def __init__(self, errors: dict[int, PolicyError], actions: list[object | None]) -> None:
        detail = "; ".join(f"[{i}] {e}" for i, e in sorted(errors.items()))
        super().__init__(f"{len(errors)} of {len(actions)} batch items failed: {detail}")
        self.errors = errors
        self.actions = actions
