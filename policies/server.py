"""`serve()`: put any `Policy` behind the gRPC `PolicyService`.

The server speaks ``grpc.health.v1`` (NOT_SERVING until the policy is warmed, SERVING after,
NOT_SERVING on shutdown), offers reflection v1 and v1alpha (switchable), TLS (optionally mutual;
with TLS no plaintext port is opened), a bearer token per team checked by an interceptor (health
checks are exempt; only team names are logged), and limits: message size, open sessions, a
session idle timeout and requests per second per team. Each RPC runs on a worker of a bounded
thread pool, so a slow step of one session does not stall others.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from policies._auth import TeamTokens, TokenInterceptor, Tokens, read_team_tokens
from policies._limits import CallGuard, RateLimiter, SessionReaper
from policies._reflection import enable_reflection
from policies._servicer import PolicyServicer
from policies.protocol import Policy
from protos.compute import ComputeMeter
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PolicyService"].full_name
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
__all__ = ["PolicyServer", "TlsConfig", "read_team_tokens", "serve"]


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS material (PEM bytes).

    Attributes:
        cert_chain: The server's certificate chain.
        private_key: The server's private key.
        client_ca: If set, clients must present a certificate signed by this CA (mutual TLS).
    """

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(
        cls, cert: str | Path, key: str | Path, client_ca: str | Path | None = None
    ) -> TlsConfig:
        """Read PEM files."""
        ca = Path(client_ca).read_bytes() if client_ca else None
        return cls(Path(cert).read_bytes(), Path(key).read_bytes(), ca)

    def credentials(self) -> grpc.ServerCredentials:
        """Build gRPC server credentials from this material."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


class PolicyServer:
    """A running (or ready to run) policy server. Use `serve()` to build one."""

    def __init__(
        self,
        policy: Policy,
        address: str = "127.0.0.1:0",
        *,
        tls: TlsConfig | None = None,
        token: Tokens = None,
        max_workers: int = 16,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        reflection_enabled: bool = True,
        max_sessions: int = 1024,
        session_idle_s: float | None = None,
        rps_per_token: float | None = None,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        compute_meter: ComputeMeter | None = None,
    ) -> None:
        self._policy = policy
        self._health = health.HealthServicer()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        tokens = TeamTokens(token)
        limiter = RateLimiter(rps_per_token) if rps_per_token is not None else None
        guard = CallGuard(tokens, limiter) if tokens or limiter else None
        self._servicer = PolicyServicer(
            policy, max_sessions=max_sessions, guard=guard, meter=compute_meter
        )
        self._reaper = (
            SessionReaper(self._servicer.sessions, session_idle_s, self._servicer.close_session)
            if session_idle_s is not None
            else None
        )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="policy"),
            interceptors=([TokenInterceptor(tokens)] if tokens else []) + list(interceptors),
            options=_server_options(max_message_bytes),
            maximum_concurrent_rpcs=max_workers * 4,
        )
        pb_grpc.add_PolicyServiceServicer_to_server(self._servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if reflection_enabled:
            enable_reflection((SERVICE_NAME, health.SERVICE_NAME), self._server)
        self._port = self._bind(address, tls)
        self._host = address.rsplit(":", 1)[0]
        if tokens and tls is None and not _loopback(self._host):
            logger.warning("tokens travel in clear text: serve with TLS off localhost")
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self.warmup_error: BaseException | None = None

    def _bind(self, address: str, tls: TlsConfig | None) -> int:
        """Open one port: TLS only when TLS is configured (plaintext is then refused)."""
        try:
            if tls is not None:
                return self._server.add_secure_port(address, tls.credentials())
            return self._server.add_insecure_port(address)
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise OSError(f"serve: cannot bind address {address!r}: {exc}") from exc

    @property
    def port(self) -> int:
        """The bound port (the real one when the address asked for port 0)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` with the bound port."""
        return f"{self._host}:{self._port}"

    def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            self._health.set(name, status)

    def start(self) -> PolicyServer:
        """Start serving; warm the policy in the background, then report SERVING."""
        self._server.start()
        if self._reaper is not None:
            self._reaper.start()
        threading.Thread(target=self._warmup, name="policy-warmup", daemon=True).start()
        return self

    def _warmup(self) -> None:
        warmup = getattr(self._policy, "warmup", None)
        try:
            if warmup is not None:
                warmup()
        except Exception as exc:  # stay NOT_SERVING; the reason is kept for the operator
            logger.exception("policy warmup failed; health stays NOT_SERVING")
            self.warmup_error = exc
            return
        if not self._stopped.is_set():
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
            self._serving.set()

    def wait_until_serving(self, timeout: float | None = None) -> bool:
        """Block until warmup finished (True) or ``timeout`` seconds passed (False)."""
        return self._serving.wait(timeout)

    def stop(self, grace: float | None = 1.0) -> None:
        """Report NOT_SERVING, then stop; in-flight calls get ``grace`` seconds."""
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        if self._reaper is not None:
            self._reaper.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server terminates (True) or ``timeout`` passes (False)."""
        return self._server.wait_for_termination(timeout)

    def stop_on_signals(self, grace: float = 5.0) -> None:
        """Stop gracefully on SIGTERM and SIGINT (call from the main thread)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            logger.info("signal %d: shutting down", signum)
            threading.Thread(target=self.stop, args=(grace,), daemon=True).start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def __enter__(self) -> PolicyServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(grace=0)


def _loopback(host: str) -> bool:
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # never share a port with another server
        # Accept the client's keepalive pings (testbed.link.client pings every 30 s).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def serve(
    policy: Policy,
    address: str = "127.0.0.1:0",
    *,
    tls: TlsConfig | None = None,
    token: Tokens = None,
    max_workers: int = 16,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    reflection: bool = True,
    max_sessions: int = 1024,
    session_idle_s: float | None = None,
    rps_per_token: float | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    compute_meter: ComputeMeter | None = None,
) -> PolicyServer:
    """Serve ``policy`` on ``address`` and return the started server.

    Args:
        policy: Any object with ``spec()``, ``reset(session)`` and ``act(session, observation)``.
        address: ``host:port``; port 0 picks a free port (see `PolicyServer.port`).
        tls: Server certificate and key; with ``client_ca`` for mutual TLS. None = plaintext.
            With TLS only a TLS port is opened: plaintext clients cannot connect.
        token: Bearer token(s) a client must send: one token, a list, or a mapping of team name
            to token (see `read_team_tokens`); None = no authentication. Logs name the team,
            never the token.
        max_workers: Threads serving RPCs (each open ActStream holds one while it lasts).
        max_message_bytes: Largest message sent or received.
        reflection: Offer gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``).
        max_sessions: Largest number of open sessions (OpenSession beyond: RESOURCE_EXHAUSTED).
        session_idle_s: Close sessions without a request for this long; None = never.
        rps_per_token: Requests per second each team may make (each ActStream message counts;
            without tokens, each client host); beyond: RESOURCE_EXHAUSTED. None = unlimited.
        interceptors: Extra server interceptors (logging, metrics), run after the token check.
        compute_meter: Measures each policy call, reported in ``ActResponse.compute``; None:
            ``ComputeMeter()`` (RAPL where readable, else CPU time x 12 W per core).

    Returns:
        The started server; health turns SERVING once ``policy.warmup()`` (if any) returned.

    Raises:
        OSError: If the address cannot be bound.
        ValueError: On a bad limit or token list (two teams sharing a token, an empty one).
    """
    return PolicyServer(
        policy,
        address,
        tls=tls,
        token=token,
        max_workers=max_workers,
        max_message_bytes=max_message_bytes,
        reflection_enabled=reflection,
        max_sessions=max_sessions,
        session_idle_s=session_idle_s,
        rps_per_token=rps_per_token,
        interceptors=interceptors,
        compute_meter=compute_meter,
    ).start()
