"""``testbed audit verify|show PATH``: check and read the sites' egress audit logs.

PATH is one log (``audit.jsonl``) or a folder searched for them (a campaign folder, a
governance root). Exit codes: 0 every log intact; 1 a log is broken (the line is named);
2 no log at PATH. Guide: docs/governance.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from testbed.cli import app
from testbed.cli._errors import FAILED, print_error
from testbed.errors import UsageError

audit_app = typer.Typer(
    help="Check and read the egress audit logs (guide: docs/governance.md).",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

PathArg = Annotated[
    Path, typer.Argument(help="An audit.jsonl, or a folder with audit logs (e.g. a campaign).")
]


def _logs(path: Path) -> list[Path]:
    from testbed.governance.gate import AUDIT_FILE

    if path.is_file():
        return [path]
    found = sorted(path.rglob(AUDIT_FILE)) if path.is_dir() else []
    if not found:
        raise UsageError(
            f"no audit log at {str(path)!r}; expected an {AUDIT_FILE} or a folder holding one",
            "logs are written under <campaign>/.governance/<site>/ or $TESTBED_GOVERNANCE_DIR",
        )
    return found


@audit_app.command("verify")
def verify_command(path: PathArg) -> None:
    """Check every line's hash chain and the head: exit 0 intact, 1 broken (naming the line)."""
    from testbed.governance.audit import verify

    console = Console(highlight=False, soft_wrap=True)
    broken = 0
    for log in _logs(path):
        check = verify(log)
        if check.intact:
            console.print(f"OK {log}: {check.lines} lines, head {check.last_hash}", markup=False)
        else:
            broken += 1
            print_error(f"{log}: {check.problem}")
    if broken:
        raise typer.Exit(FAILED)


@audit_app.command("show")
def show_command(
    path: PathArg,
    refused: Annotated[bool, typer.Option(help="Only refused decisions.")] = False,
) -> None:
    """List the decisions: time, decision, class, artifact, recipient, requester, rule.

    Exit codes: 0 listed; 1 a log has a line that is not JSON; 2 no audit log at PATH.
    """
    from testbed.governance.audit import AuditLog

    console = Console(highlight=False, soft_wrap=True)
    for log in _logs(path):
        console.print(f"{log}:", markup=False)
        try:
            lines = AuditLog(log).entries()
        except ValueError as error:  # a line that is not JSON
            print_error(f"{log}: unreadable ({error}); testbed audit verify {log} names the line")
            raise typer.Exit(FAILED) from None
        for line in lines:
            if refused and line.get("decision") != "refused":
                continue
            console.print(
                f"  {line.get('seq')} {line.get('time')} {line.get('decision')} "
                f"{line.get('class')} {line.get('artifact')} -> {line.get('recipient')} "
                f"by {line.get('requester')} ({line.get('rule')}"
                + (f", {line['clearance']}" if line.get("clearance") else "")
                + (f", basis: {line['basis']}" if line.get("basis") else "")
                + ")",
                markup=False,
            )
