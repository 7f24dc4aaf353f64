"""``testbed serve POLICY``: run a policy server (composition root: imports ``policies``)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from testbed.cli import app

ENV_ID = "Testbed/ConveyorSort-v0"

POLICY_HELP = (
    "scripted:<site> (the scripted controller tuned for a site), random (uniform actions over "
    f"{ENV_ID}'s spaces at --site), sb3:<model.zip> (a Stable-Baselines3 model file), or "
    "module:attribute (a Policy object, or a class/factory called with no arguments)"
)


def load_policy(name: str, site: str = "kr-changwon") -> Any:
    """Build the policy named on the command line.

    Raises:
        typer.BadParameter: If the name has no known form or cannot be loaded.
    """
    if name.startswith("scripted:"):
        from policies.scripted import scripted_policy

        return scripted_policy(name.split(":", 1)[1])
    if name == "random":
        return _random_policy(site)
    if name.startswith("sb3:"):
        from policies.sb3_policy import SB3Policy

        return SB3Policy.load(name.split(":", 1)[1])
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(f"expected {POLICY_HELP}; got {name!r}", param_hint="POLICY")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise typer.BadParameter(f"cannot load {name!r}: {exc}", param_hint="POLICY") from exc
    is_policy = not isinstance(target, type) and all(
        callable(getattr(target, m, None)) for m in ("spec", "reset", "act")
    )
    return target if is_policy else target()


def _random_policy(site: str) -> Any:
    import gymnasium

    import envs  # noqa: F401  # registers the env ids
    from policies.random_policy import RandomPolicy
    from testbed.policy import spaces_to_specs

    env = gymnasium.make(ENV_ID, site=site)
    try:
        observation, action = spaces_to_specs(env.observation_space, env.action_space)
    finally:
        env.close()
    return RandomPolicy(observation, action, policy_id=f"random@{site}")


def _sigterm_at_stdin_eof() -> None:
    """Read stdin until end of file, then SIGTERM this process (the graceful stop below)."""
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


@app.command("serve")
def serve_command(
    policy: Annotated[str, typer.Argument(help=POLICY_HELP)],
    address: Annotated[str, typer.Option(help="host:port to bind (port 0 = any)")] = (
        "127.0.0.1:50051"
    ),
    site: Annotated[str, typer.Option(help="Site whose env spaces `random` uses")] = (
        "kr-changwon"
    ),
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM)")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="CA for client certificates (mutual TLS)")
    ] = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding the bearer token")] = None,
    tokens_file: Annotated[
        Path | None, typer.Option(help="File of 'team: token' lines, one token per team")
    ] = None,
    max_workers: Annotated[int, typer.Option(help="RPC worker threads")] = 16,
    max_sessions: Annotated[int, typer.Option(help="Most open sessions", min=1)] = 1024,
    session_idle_s: Annotated[
        float | None, typer.Option(help="Close sessions idle this long (s); default never")
    ] = None,
    rps_per_token: Annotated[
        float | None, typer.Option(help="Requests per second per team; default unlimited")
    ] = None,
    no_reflection: Annotated[bool, typer.Option(help="Turn gRPC server reflection off")] = False,
    exit_with_parent: Annotated[
        bool,
        typer.Option(
            help="Stop at end of file on stdin: give it a pipe from the starting process, and the "
            "server ends when that process does, however it dies"
        ),
    ] = False,
) -> None:
    """Serve POLICY over gRPC until SIGTERM / Ctrl-C (then shut down gracefully)."""
    from policies.server import TlsConfig, read_team_tokens, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if exit_with_parent:  # first: the parent may die while the policy loads
        threading.Thread(target=_sigterm_at_stdin_eof, name="parent-watch", daemon=True).start()
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both --tls-cert and --tls-key, or neither")
    tls = TlsConfig.from_files(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
    token: str | dict[str, str] | None = token_file.read_text().strip() if token_file else None
    if token_file and not token:
        raise typer.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    if tokens_file is not None:
        if token_file is not None:
            raise typer.BadParameter("give --token-file or --tokens-file, not both")
        try:
            token = read_team_tokens(tokens_file)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--tokens-file") from None
    limits = {"max_sessions": max_sessions, "session_idle_s": session_idle_s,
              "rps_per_token": rps_per_token, "reflection": not no_reflection}  # fmt: skip
    loaded = load_policy(policy, site)
    try:
        server = serve(loaded, address, tls=tls, token=token, max_workers=max_workers,
                       **limits)  # type: ignore[arg-type]  # fmt: skip
    except ValueError as exc:  # a bad limit or token list
        raise typer.BadParameter(str(exc)) from None
    server.stop_on_signals()
    # The bound address on stdout (port 0 resolves here); never the token.
    print(
        f"serving {server.address} tls={'on' if tls else 'off'} token={'on' if token else 'off'}",
        flush=True,
    )
    server.wait()
