"""``testbed check-policy HOST:PORT``: conformance check of a running policy server.

The checks are in `testbed.link.check` (imported when the command runs, so other commands
start without grpc).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from testbed.cli import _checks, app

#: A path option that must name an existing file (else a usage error naming it, exit 2).
FILE = {"exists": True, "dir_okay": False}


@app.command("check-policy")
def check_policy_command(
    address: Annotated[str, typer.Argument(help="host:port of the policy server")],
    site: Annotated[str, typer.Option(help="Site whose env spaces to offer")] = "kr-changwon",
    env: Annotated[str, typer.Option(help="Env id (task) whose spaces to offer")] = (
        "Testbed/ConveyorSort-v0"
    ),
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the bearer token", **FILE)
    ] = None,
    tls_ca: Annotated[
        Path | None, typer.Option(help="CA certificate of the server (PEM)", **FILE)
    ] = None,
    steps: Annotated[int, typer.Option(min=1, max=10_000, help="Steps per episode check")] = 50,
    deadline_ms: Annotated[float, typer.Option(help="Deadline of each step")] = 1000.0,
    camera_obs: Annotated[
        str | None,
        typer.Option(help="Offer image fields too: WxH[@STATION][+depth] (docs/cameras.md)"),
    ] = None,
) -> None:
    """Check that the server at ADDRESS honours the policy contract; exit 1 on any failure.

    Exit codes: 0 every check passed (or was skipped: not advertised); 1 a check failed (an
    unreachable server included); 2 a bad address, site or file.
    """
    from testbed.link.check import check_policy_server

    _checks.host_port(address)
    _checks.site(site)
    _checks.env_id(env)
    env_kwargs = _checks.camera_obs(camera_obs, site) if camera_obs else {}
    token = token_file.read_text().strip() if token_file else None
    rows = check_policy_server(
        address,
        site,
        token=token,
        tls_ca=tls_ca,
        steps=steps,
        deadline_s=deadline_ms / 1000.0,
        env_id=env,
        env_kwargs=env_kwargs,
    )
    table = Table(title=f"check-policy {address} ({env} at {site})")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for name, ok, detail in rows:
        result = "[green]PASS" if ok else "[yellow]SKIP" if ok is None else "[red]FAIL"
        table.add_row(name, result, detail)
    Console(soft_wrap=True).print(table)
    if any(ok is False for _, ok, _ in rows):
        raise typer.Exit(1)
