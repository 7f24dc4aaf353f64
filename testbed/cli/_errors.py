"""How every ``testbed`` command reports a problem: one style and one exit-code scheme.

On stderr, never a traceback for a mistake or a failure the testbed understands::

    error: <what> '<value>'; expected <...>[; did you mean '<name>'?]
    hint: <how to fix it>

Exit codes (docs/cli.md): 0 done; 1 the command was well-formed but its work failed (a trial,
a check, a replay, a busy port); 2 the user's mistake, found before any work starts (a bad
argument or option, an unknown site, policy, task or preset, a file that is not what it should
be). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from typer._click import exceptions as click_errors
from typer.core import TyperGroup

from testbed.errors import (
    CampaignError,
    ExportError,
    ReplayDivergenceError,
    ReplayError,
    TestbedError,
    UsageError,
)

#: Exit codes of every command.
DONE, FAILED, USAGE = 0, 1, 2


def closest(value: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` closest to ``value``, if any is close (`difflib`)."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""`` if none is close."""
    close = closest(value, choices)
    return f"; did you mean {close!r}?" if close else ""


def one_of(what: str, value: str, choices: Sequence[str], also: str = "") -> str:
    """``"<what>; expected one of a, b, c<also>; did you mean 'b'?"`` (the suggestion if close).

    Args:
        what: The problem with the value, naming it: ``unknown site 'kr-changwn'``.
        value: The value as the user gave it (compared with ``choices``).
        choices: What would have been accepted.
        also: Appended to the list, e.g. ``" or a bundle folder"``.
    """
    listed = ", ".join(choices) or "none"
    return f"{what}; expected one of {listed}{also}{did_you_mean(value, choices)}"


def unknown(
    kind: str, value: str, choices: Sequence[str], *hints: str, also: str = ""
) -> UsageError:
    """The error for a name that is not one of ``choices``: ``unknown <kind> '<value>'; ...``."""
    return UsageError(one_of(f"unknown {kind} {value!r}", value, choices, also), *hints)


def exit_code(error: BaseException) -> int:
    """2 for the user's mistake, 1 for work that failed (see the module docstring)."""
    from envs.errors import FactoryDataError, MissingStationError, UnknownSiteError

    if isinstance(error, ReplayDivergenceError):
        return FAILED
    mistakes = (UsageError, ReplayError, ExportError, CampaignError, UnknownSiteError,
                FactoryDataError, MissingStationError, click_errors.UsageError)  # fmt: skip
    return USAGE if isinstance(error, mistakes) else FAILED


def print_error(message: str, hints: Iterable[str] = ()) -> None:
    """``error: <message>`` (later lines as they are) and ``hint: <hint>`` lines, on stderr."""
    first, *rest = str(message).splitlines() or [""]
    lines = [f"error: {first}", *rest, *(f"hint: {hint}" for hint in hints)]
    print("\n".join(lines), file=sys.stderr, flush=True)


def report(error: BaseException) -> int:
    """Print ``error`` in the one style; returns the exit code."""
    if isinstance(error, click_errors.NoArgsIsHelpError):
        print(error.format_message(), file=sys.stderr)
        return USAGE
    if isinstance(error, click_errors.UsageError):
        message = error.format_message().rstrip(".")
        hints = []
        if error.ctx is not None:
            hints.append(f"{error.ctx.command_path} --help")
        print_error(message[:1].lower() + message[1:], hints)
        return USAGE
    print_error(str(error) or type(error).__name__, getattr(error, "hints", ()))
    return exit_code(error)


def handled() -> tuple[type[BaseException], ...]:
    """The errors every command reports in the one style (no traceback)."""
    from envs.errors import EnvsError

    return (TestbedError, EnvsError, click_errors.UsageError)


class TestbedGroup(TyperGroup):
    """The root command group: reports errors in the one style (see the module docstring).

    Click and typer print usage errors in a box and let other exceptions out as tracebacks;
    here they are caught where every command (and `typer.testing.CliRunner`) passes, in
    `main`.
    """

    __test__ = False  # not a pytest test class despite the name

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode, exit with the scheme's code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except typer.Abort:
            print_error("aborted")
            code = FAILED
        except handled() as error:
            code = report(error)
        sys.exit(code if isinstance(code, int) else DONE)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Find the subcommand; an unknown one is named with the closest existing one."""
        try:
            return super().resolve_command(ctx, args)
        except click_errors.UsageError as error:
            if args and not args[0].startswith("-"):
                commands = sorted(self.list_commands(ctx))
                error.message = one_of(f"unknown command {args[0]!r}", args[0], commands)
            raise
