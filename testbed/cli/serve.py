"""``testbed serve POLICY``: run a policy server (composition root: imports ``policies``)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from testbed.cli import _checks, _egress, app
from testbed.cli._errors import FAILED, did_you_mean, print_error
from testbed.errors import UsageError
from testbed.imports import import_module_of

ENV_ID = "Testbed/ConveyorSort-v0"
#: A path option that must name an existing file (else a usage error naming it, exit 2).
FILE: dict[str, Any] = {"exists": True, "dir_okay": False}

POLICY_HELP = (
    "scripted:<site> (--env's scripted controller tuned for a site), random (uniform actions over "
    "--env's spaces at --site), sb3:<model.zip> (a Stable-Baselines3 model file), or "
    "module:attribute (a Policy object, or a class/factory called with no arguments)"
)


def load_policy(name: str, site: str = "kr-changwon", env_id: str = ENV_ID) -> Any:
    """Build the policy named on the command line.

    Raises:
        UsageError: If the name has no known form, names an unknown site or a missing file, or
            cannot be imported (with the closest valid name where one is close).
    """
    _checks.policy_spec(name, env_id=_checks.env_id(env_id))
    if name.startswith("scripted:"):
        from testbed.cli._scripted import scripted_for

        return scripted_for(env_id, name.split(":", 1)[1])
    if name == "random":
        return _random_policy(_checks.site(site), _checks.env_id(env_id))
    if name.startswith("sb3:"):
        from policies.sb3_policy import SB3Policy

        return SB3Policy.load(name.split(":", 1)[1])
    return _import_policy(name)


def _import_policy(name: str) -> Any:
    """``module:attribute``: a Policy object, or a class/factory called with no arguments."""
    module, attribute = import_module_of(name, f"policy {name!r}")
    module_name = module.__name__
    if not hasattr(module, attribute):
        public = [a for a in dir(module) if not a.startswith("_")]
        raise UsageError(
            f"policy {name!r}: module {module_name} has no attribute {attribute!r}"
            + did_you_mean(attribute, public)
        )
    target = getattr(module, attribute)
    is_policy = not isinstance(target, type) and all(
        callable(getattr(target, m, None)) for m in ("spec", "reset", "act")
    )
    return target if is_policy else target()


def _random_policy(site: str, env_id: str) -> Any:
    import gymnasium

    import envs  # noqa: F401  # registers the env ids
    from policies.random_policy import RandomPolicy
    from testbed.link.policy import spaces_to_specs

    env = gymnasium.make(env_id, site=site)
    try:
        assert isinstance(env.action_space, gymnasium.spaces.Box)
        observation, action = spaces_to_specs(env.observation_space, env.action_space)
    finally:
        env.close()
    task = "" if env_id == ENV_ID else "/" + env_id.split("/")[-1]  # ConveyorSort: no suffix
    return RandomPolicy(observation, action, policy_id=f"random@{site}{task}")


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
    env: Annotated[str, typer.Option(help="Env id (task) whose spaces `random` uses")] = ENV_ID,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM)", **FILE)] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM)", **FILE)] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="CA for client certificates (mutual TLS)", **FILE)
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the bearer token", **FILE)
    ] = None,
    tokens_file: Annotated[
        Path | None, typer.Option(help="File of 'team: token' lines, one token per team", **FILE)
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
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Who the served sb3: model's weights go to (a site id, a team): the egress "
            "gate applies its train sites' rules [default: not asked; the train site's own].",
        ),
    ] = None,
    basis: _egress.Basis = "",
    requester: _egress.Requester = None,
    energy_counter: Annotated[
        str,
        typer.Option(
            help="How each reply's compute energy is measured (ActResponse.compute): auto "
            "(Linux RAPL where readable, else CPU time x --watts-per-core), rapl, cpu-estimate "
            "or off",
        ),
    ] = "auto",
    watts_per_core: Annotated[
        float,
        typer.Option(help="Watts per busy core of the CPU-time estimate (12: Green Algorithms)"),
    ] = 12.0,
) -> None:
    """Serve POLICY over gRPC until SIGTERM / Ctrl-C (then shut down gracefully).

    Exit codes: 0 stopped; 1 the address cannot be listened on (a port in use); 2 a bad POLICY,
    address, site or file, or the egress gate refused an sb3: model for ``--to``.
    """
    from policies.server import TlsConfig, read_team_tokens, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if exit_with_parent:  # first: the parent may die while the policy loads
        threading.Thread(target=_sigterm_at_stdin_eof, name="parent-watch", daemon=True).start()
    _checks.host_port(address)
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key: give both, or neither")
    tls = TlsConfig.from_files(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
    token: str | dict[str, str] | None = token_file.read_text().strip() if token_file else None
    if token_file and not token:
        raise UsageError(f"--token-file {str(token_file)!r}: the file is empty; expected a token")
    if tokens_file is not None:
        if token_file is not None:
            raise UsageError("--token-file and --tokens-file: give one, not both")
        try:
            token = read_team_tokens(tokens_file)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--tokens-file {str(tokens_file)!r}: {exc}") from None
    limits = {"max_sessions": max_sessions, "session_idle_s": session_idle_s,
              "rps_per_token": rps_per_token, "reflection": not no_reflection}  # fmt: skip
    if to is not None and policy.startswith("sb3:"):
        from testbed.governance.models import gate_model

        gate_model(Path(policy.split(":", 1)[1]), _egress.request(to, basis, requester))
    meter = _meter(energy_counter, watts_per_core)
    _check_listen(address)  # before loading the policy, which may take a while
    loaded = load_policy(policy, site, env)
    try:
        server = serve(loaded, address, tls=tls, token=token, max_workers=max_workers,
                       compute_meter=meter, **limits)  # type: ignore[arg-type]  # fmt: skip
    except ValueError as exc:  # a bad limit or token list
        raise UsageError(str(exc)) from None
    except OSError as exc:  # taken between the check and the bind
        _cannot_listen(address, exc)
    server.stop_on_signals()
    # The bound address on stdout (port 0 resolves here); never the token.
    print(
        f"serving {server.address} tls={'on' if tls else 'off'} token={'on' if token else 'off'}",
        flush=True,
    )
    server.wait()


def _meter(counter: str, watts_per_core: float) -> Any:
    """The server's `protos.compute.ComputeMeter`; a bad choice is a usage error."""
    from protos.compute import ComputeMeter

    try:
        return ComputeMeter(counter, watts_per_core)
    except ValueError as exc:
        raise UsageError(f"--energy-counter / --watts-per-core: {exc}") from None


def _check_listen(address: str) -> None:
    """Exit 1 naming the address if it cannot be listened on now (port 0 always can)."""
    host, port = _checks.host_port(address)
    if port == 0:
        return
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    try:
        # SO_REUSEADDR, as gRPC sets it: only a port someone listens on is refused.
        with socket.create_server((host.strip("[]"), port), family=family):
            pass
    except OSError as exc:
        _cannot_listen(address, exc)


def _cannot_listen(address: str, exc: OSError) -> NoReturn:
    host, port = _checks.host_port(address)
    reason = os.strerror(exc.errno).lower() if exc.errno else "cannot bind"
    if exc.errno == errno.EADDRINUSE:
        hint = (f"see what holds the port: ss -ltnp 'sport = :{port}'; or choose another "
                f"--address ({host}:0 takes any free port)")  # fmt: skip
    else:
        hint = "choose an address of this machine, e.g. 127.0.0.1:50051 or 0.0.0.0:50051"
    print_error(
        f"address {address!r}: cannot listen there ({reason}); expected a free port on an "
        "address of this machine",
        [hint],
    )
    raise typer.Exit(FAILED)
