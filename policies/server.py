"""`serve()`: put any `Policy` behind the gRPC `PolicyService`.

The server speaks ``grpc.health.v1`` (NOT_SERVING until the policy is warmed, SERVING after,
NOT_SERVING on shutdown), offers reflection, TLS (optionally mutual), a per-team bearer token
checked by an interceptor (health checks are exempt), and explicit message size limits. Each RPC
runs on a worker of a bounded thread pool, so a slow step of one session does not stall others.
"""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from policies._servicer import PolicyServicer
from policies.protocol import Policy
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PolicyService"].full_name
_HEALTH_PREFIX = "/grpc.health.v1.Health/"
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


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


class _TokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` (UNAUTHENTICATED)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [f"Bearer {t}".encode() for t in tokens]

    def _authorised(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                offered = value.encode() if isinstance(value, str) else bytes(value)
                return any(hmac.compare_digest(offered, t) for t in self._tokens)
        return False

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if method.startswith(_HEALTH_PREFIX) or self._authorised(
            handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        ):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        return None if handler is None else _denied(handler, method)


def _denied(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        # Never echo the offered token: it may be another team's.
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{method}: missing or invalid token")

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class PolicyServer:
    """A running (or ready to run) policy server. Use `serve()` to build one."""

    def __init__(
        self,
        policy: Policy,
        address: str = "127.0.0.1:0",
        *,
        tls: TlsConfig | None = None,
        token: str | Sequence[str] | None = None,
        max_workers: int = 16,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        reflection_enabled: bool = True,
        max_sessions: int = 1024,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
    ) -> None:
        self._policy = policy
        self._health = health.HealthServicer()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        tokens = [token] if isinstance(token, str) else list(token or ())
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="policy"),
            interceptors=([_TokenInterceptor(tokens)] if tokens else []) + list(interceptors),
            options=_server_options(max_message_bytes),
            maximum_concurrent_rpcs=max_workers * 4,
        )
        pb_grpc.add_PolicyServiceServicer_to_server(
            PolicyServicer(policy, max_sessions=max_sessions), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if reflection_enabled:
            names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, self._server)
        bind = self._server.add_secure_port if tls else self._server.add_insecure_port
        args = (address, tls.credentials()) if tls else (address,)
        try:
            self._port = bind(*args)  # type: ignore[operator]
        except RuntimeError as exc:  # grpcio reports a failed bind this way
            raise OSError(f"serve: cannot bind address {address!r}: {exc}") from exc
        self._host = address.rsplit(":", 1)[0]
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self.warmup_error: BaseException | None = None

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


def _server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # never share a port with another server
        # Accept the client's keepalive pings (testbed.policy_client pings every 30 s).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def serve(
    policy: Policy,
    address: str = "127.0.0.1:0",
    *,
    tls: TlsConfig | None = None,
    token: str | Sequence[str] | None = None,
    max_workers: int = 16,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    reflection: bool = True,
    max_sessions: int = 1024,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> PolicyServer:
    """Serve ``policy`` on ``address`` and return the started server.

    Args:
        policy: Any object with ``spec()``, ``reset(session)`` and ``act(session, observation)``.
        address: ``host:port``; port 0 picks a free port (see `PolicyServer.port`).
        tls: Server certificate and key; with ``client_ca`` for mutual TLS. None = plaintext.
        token: Bearer token(s) a client must send; None = no authentication.
        max_workers: Threads serving RPCs (each open ActStream holds one while it lasts).
        max_message_bytes: Largest message sent or received.
        reflection: Offer gRPC server reflection.
        max_sessions: Largest number of open sessions.
        interceptors: Extra server interceptors (logging, metrics), run after the token check.

    Returns:
        The started server; health turns SERVING once ``policy.warmup()`` (if any) returned.

    Raises:
        OSError: If the address cannot be bound.
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
        interceptors=interceptors,
    ).start()
