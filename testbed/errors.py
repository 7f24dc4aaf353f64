"""The orchestrator's error hierarchy: everything `testbed` raises derives from TestbedError."""

from __future__ import annotations


class TestbedError(Exception):
    """Base class for errors raised by the testbed orchestrator."""

    __test__ = False  # not a pytest test class despite the name


class UsageError(TestbedError):
    """What the user asked for cannot work: an unknown name, a malformed argument, a bad file.

    Found before any work starts; the CLI prints it as ``error: <message>`` with one ``hint:``
    line per hint, and exits 2 (docs/cli.md).

    Attributes:
        hints: Lines that help fix the mistake (a command to run, where to look).
    """

    def __init__(self, message: str, *hints: str) -> None:
        super().__init__(message)
        self.hints = hints


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


class CampaignError(TestbedError):
    """A campaign or trial cannot run as configured (named key or folder in the message)."""


class ReplayError(TestbedError):
    """An episode record cannot be replayed (unreadable, changed site bundle, bad step range)."""


class ReplayDivergenceError(ReplayError):
    """A replay did not reproduce its record bit for bit.

    Attributes:
        step: Index of the env step whose outcome differs (the action at ``step`` led to
            observation ``step + 1``); for the starting observation, the step it was taken at.
        observation: Row of the record's observations that differs (``step + 1`` after a step,
            ``step`` for the starting observation).
        field: What differs: ``obs/<name>``, ``reward``, ``terminated``, ``truncated``,
            ``info/<key>`` or ``events``.
        index: Element of the field that differs first (``()`` for a scalar).
        recorded: The recorded value of that element.
        replayed: The replayed value of that element.
    """

    def __init__(
        self,
        where: str,
        step: int,
        observation: int,
        field: str,
        index: tuple[int, ...],
        recorded: object,
        replayed: object,
    ) -> None:
        element = f"{field}[{', '.join(map(str, index))}]" if index else field
        super().__init__(
            f"{where}: replay diverged at step {step} (observation {observation}): "
            f"{element} recorded {recorded!r}, replayed {replayed!r}"
        )
        self.step = step
        self.observation = observation
        self.field = field
        self.index = index
        self.recorded = recorded
        self.replayed = replayed


class ExportError(TestbedError):
    """Episode records cannot be exported (none found, mixed environments, dataset exists)."""
