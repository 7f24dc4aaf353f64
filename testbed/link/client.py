"""`RemotePolicy`: the testbed's gRPC client of a `PolicyService`.

The only module on the testbed side that touches the generated stubs. Every call has a deadline;
`grpc.RpcError` becomes a `testbed.errors.PolicyError` subclass; only idempotent calls are
retried (one retry on UNAVAILABLE), and ``Act`` retries re-send the same (session_id, step), which
the server answers from its cache.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.compute import UNMEASURED, ComputeUsage, usage_from_proto
from protos.specs import (
    PROTOCOL_VERSION,
    BoxLike,
    FieldSpec,
    PolicySpec,
    SessionInfo,
    field_to_proto,
    image_encodings_to_proto,
    spec_from_proto,
)
from protos.tensors import FieldDecoder, TensorError
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc
from testbed.errors import (
    PolicyBatchError,
    PolicyDeadlineError,
    PolicyError,
    PolicyHandshakeError,
    PolicyProtocolError,
    PolicyUnavailableError,
)
from testbed.link._observations import (
    IMAGE_ENCODINGS,
    OBSERVATION_FORMS,
    Fill,
    ImageEncoding,
    ObservationForm,
    ObservationWriter,
    writer_for,
)
from testbed.link._stream import ActStream, map_rpc_error, status_error
from testbed.link.policy import ActionValidator, spaces_to_specs

logger = logging.getLogger(__name__)

Mode = Literal["unary", "stream", "batch"]
_ACT_STREAM = "/testbed.policy.v1.PolicyService/ActStream"


def _undecodable(error: grpc.RpcError) -> bool:
    """True if the reply arrived but was not a protobuf message (grpc reports it as INTERNAL)."""
    details = error.details() if hasattr(error, "details") else ""
    return error.code() == grpc.StatusCode.INTERNAL and "deserializing response" in (details or "")


def _read(value: bytes | str | Path | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


@dataclass
class _RemoteSession:
    """Client-side state of one open server session, with a request reused every step."""

    server_id: str
    step: int
    request: pb.ActRequest
    writer: ObservationWriter  # the session's observation form (named or packed)
    fill: Fill  # writes an observation into ``request``
    compute: ComputeUsage = UNMEASURED  # of the last act call (unknown until a reply says)


@dataclass
class _BatchRequest:
    """An ActBatch request reused while the same sessions are batched in the same order."""

    server_ids: tuple[str, ...]
    message: pb.ActBatchRequest
    items: list[tuple[pb.ActRequest, Fill]]


class RemotePolicy:
    """A policy served over gRPC, usable wherever the testbed expects a `Policy`."""

    def __init__(
        self,
        address: str,
        *,
        observation_space: Any = None,
        action_space: BoxLike | None = None,
        mode: Mode = "unary",
        tls_ca: bytes | str | Path | None = None,
        tls_cert: bytes | str | Path | None = None,
        tls_key: bytes | str | Path | None = None,
        tls_server_name: str | None = None,
        token: str | None = None,
        deadline_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        control_timeout_s: float = 10.0,
        accept_chunks: bool = True,
        max_message_bytes: int = 16 * 1024 * 1024,
        max_batch: int = 0,
        observation_form: ObservationForm = "auto",
        image_encoding: ImageEncoding = "raw",
    ) -> None:
        """Create the client (no network traffic until the first call).

        Args:
            address: ``host:port`` of the policy server.
            observation_space: The env's Dict observation space (needed before `reset`).
            action_space: The env's Box action space (needed before `reset`).
            mode: ``unary`` (Act), ``stream`` (ActStream) or ``batch`` (Act + ActBatch).
            tls_ca: PEM (bytes or path) of the CA that signed the server; None = plaintext.
            tls_cert: Client certificate for mutual TLS.
            tls_key: Client key for mutual TLS.
            tls_server_name: Override the name checked against the server certificate.
            token: Bearer token sent as ``authorization`` metadata.
            deadline_s: Deadline of each Act / ActStream step / ActBatch call.
            connect_timeout_s: How long to wait for the channel to connect.
            control_timeout_s: Deadline of GetSpec and session calls (policy resets may be slow).
            accept_chunks: Accept action chunks (a leading dimension) from the server.
            max_message_bytes: Largest message sent or received.
            max_batch: In ``batch`` mode, the most sessions one ActBatch will carry, sent as
                ``capabilities.max_batch`` so a server with a smaller ``max_batch`` rejects
                the handshake (0: not stated).
            observation_form: How observations travel (protocol 1.1): ``auto`` (default) packs
                them when the server advertises ``packed_observations`` and sends the named
                map otherwise (a 1.0 server); ``packed`` requires packing (the handshake fails
                without it); ``named`` always sends the map. The policy sees the same arrays
                either way; packed costs less per step (docs/benchmarks.md).
            image_encoding: ``raw`` (default) sends image fields (uint8 ``(H, W[, C])``) as
                bytes; ``png`` sends them PNG-encoded in the named form (lossless; about a
                tenth of the bytes of a rendered 96x96 frame, for a few ms of encoding),
                which every SDK server decodes. ``png`` implies named observations.
        """
        if mode not in ("unary", "stream", "batch"):
            raise ValueError(f"RemotePolicy: mode: expected unary, stream or batch, got {mode!r}")
        if observation_form not in OBSERVATION_FORMS:
            raise ValueError(
                f"RemotePolicy: observation_form: expected one of {OBSERVATION_FORMS}, "
                f"got {observation_form!r}"
            )
        if image_encoding not in IMAGE_ENCODINGS:
            raise ValueError(
                f"RemotePolicy: image_encoding: expected one of {IMAGE_ENCODINGS}, "
                f"got {image_encoding!r}"
            )
        if image_encoding == "png" and observation_form == "packed":
            raise ValueError(
                "RemotePolicy: image_encoding 'png' travels in the named form only; "
                "use observation_form auto or named"
            )
        self.observation_form: ObservationForm = observation_form
        self.image_encoding: ImageEncoding = image_encoding
        self.address = address
        self.mode: Mode = mode
        self.deadline_s = deadline_s
        self._connect_timeout_s = connect_timeout_s
        self._control_timeout_s = control_timeout_s
        self._accept_chunks = accept_chunks
        self._max_batch = max_batch
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._channel = self._make_channel(
            _read(tls_ca), _read(tls_cert), _read(tls_key), tls_server_name, max_message_bytes
        )
        self._stub = pb_grpc.PolicyServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._connected = False
        self._spec: PolicySpec | None = None
        self._sessions: dict[str, _RemoteSession] = {}
        self._batch: _BatchRequest | None = None
        self._stream: ActStream | None = None
        self._observation: dict[str, FieldSpec] | None = None
        self._action: FieldSpec | None = None
        self._decode_action: FieldDecoder | None = None
        self._validate_action: ActionValidator | None = None
        self.warnings: list[str] = []
        if observation_space is not None and action_space is not None:
            self.bind(observation_space, action_space)

    def _make_channel(
        self,
        ca: bytes | None,
        cert: bytes | None,
        key: bytes | None,
        server_name: str | None,
        max_bytes: int,
    ) -> grpc.Channel:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.enable_retries", 0),  # retries are ours, and only where idempotent
            ("grpc.max_reconnect_backoff_ms", 2000),  # notice a restarted server within ~2 s
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if ca is None:
            return grpc.insecure_channel(self.address, options=options)
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        return grpc.secure_channel(self.address, credentials, options=options)

    def bind(self, observation_space: Any, action_space: BoxLike) -> None:
        """Set the env's spaces offered at the handshake (Dict of Box, and Box)."""
        self._observation, self._action = spaces_to_specs(observation_space, action_space)
        self._decode_action = FieldDecoder("action", self._action.dtype, self._action.shape)
        self._validate_action = ActionValidator(self._action, allow_chunk=self._accept_chunks)

    # --- connection and control calls -------------------------------------------------------

    def _connect(self) -> None:
        if self._connected:
            return
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self._connect_timeout_s)
        except grpc.FutureTimeoutError:
            raise PolicyUnavailableError(
                f"policy server {self.address} not reachable within {self._connect_timeout_s} s"
            ) from None
        self._connected = True

    def _call(
        self,
        rpc: str,
        request: Any,
        timeout_s: float,
        *,
        retry: bool,
        method: Any = None,
        wait: bool = False,
    ) -> Any:
        """Unary call with a deadline; one retry on UNAVAILABLE if ``retry`` (idempotent).

        With ``wait`` the call waits (within its deadline) for a reconnecting channel instead
        of failing at once: session calls ride out a server restart.
        """
        method = method or getattr(self._stub, rpc)
        end = time.monotonic() + timeout_s
        for attempt in (0, 1):
            try:
                timeout = max(end - time.monotonic(), 1e-4)
                return method(
                    request, timeout=timeout, metadata=self._metadata, wait_for_ready=wait or None
                )
            except grpc.RpcError as exc:
                if _undecodable(exc):
                    raise PolicyProtocolError(f"{rpc}: malformed reply (not a message)") from None
                if wait and exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise PolicyUnavailableError(
                        f"{rpc}: no answer from {self.address} within {timeout_s:g} s "
                        "(server down or restarting?)"
                    ) from None
                again = retry and attempt == 0 and exc.code() == grpc.StatusCode.UNAVAILABLE
                if not (again and time.monotonic() < end):
                    raise map_rpc_error(rpc, exc, timeout_s) from None
        raise AssertionError("unreachable")

    def health(self, service: str = "") -> str:
        """Return the server's ``grpc.health.v1`` status (``SERVING``, ``NOT_SERVING``, ...)."""
        self._connect()
        request = health_pb2.HealthCheckRequest(service=service)
        reply = self._call(
            "Health.Check", request, self._control_timeout_s, retry=True, method=self._health.Check
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def spec(self) -> PolicySpec:
        """Return the server's `PolicySpec` (GetSpec, cached)."""
        if self._spec is None:
            self._connect()
            reply = self._call("GetSpec", pb.GetSpecRequest(), self._control_timeout_s, retry=True)
            try:
                self._spec = spec_from_proto(reply)
            except TensorError as exc:
                raise PolicyProtocolError(f"GetSpec: malformed spec: {exc}") from exc
        return self._spec

    def reset(self, session: SessionInfo) -> None:
        """Open a session (first episode: the handshake) or reset it (later episodes).

        A server that restarted (and so forgot the session) gets a new handshake.

        Raises:
            PolicyHandshakeError: The server rejected the env's spaces, listing each field.
            PolicyUnavailableError: The server stayed unreachable for the control deadline.
        """
        self._connect()
        known = self._sessions.get(session.session_id)
        end = time.monotonic() + self._control_timeout_s
        if known is not None:
            request = pb.ResetSessionRequest(
                session_id=known.server_id, episode=session.episode, seed=session.seed
            )
            try:
                self._call("ResetSession", request, self._control_timeout_s, retry=True, wait=True)
                known.step = 0
                return
            except PolicyUnavailableError as exc:  # restarted (session lost), or down a while
                if time.monotonic() >= end:
                    raise
                logger.info("ResetSession: %s; opening a new session", exc)
                self._sessions.pop(session.session_id, None)
        self._sessions[session.session_id] = self._open(session, end - time.monotonic())

    def _open(self, session: SessionInfo, timeout_s: float) -> _RemoteSession:
        if self._observation is None or self._action is None:
            raise PolicyHandshakeError(
                "OpenSession: no env spaces bound (pass observation_space/action_space)", []
            )
        # auto: ask only a server that advertises packing (GetSpec, cached); a 1.0 server
        # does not, and would ignore the request anyway.
        form = self.observation_form
        ask = self.image_encoding == "raw" and (
            form == "packed" or (form == "auto" and self.spec().capabilities.packed_observations)
        )
        images: list[str] = [] if self.image_encoding == "raw" else [self.image_encoding]
        self._check_image_encodings(images)
        request = pb.OpenSessionRequest(
            observation=[field_to_proto(n, f) for n, f in self._observation.items()],
            action=field_to_proto("action", self._action),
            site=session.site,
            campaign=session.campaign,
            episode=session.episode,
            seed=session.seed,
            protocol_version=PROTOCOL_VERSION,
            capabilities=pb.Capabilities(
                streaming=self.mode == "stream",
                batching=self.mode == "batch",
                action_chunking=self._accept_chunks,
                max_batch=self._max_batch if self.mode == "batch" else 0,
                packed_observations=ask,
                image_encodings=image_encodings_to_proto(images),
            ),
        )
        reply = self._call("OpenSession", request, timeout_s, retry=False, wait=True)
        if not reply.accepted:
            errors = [(e.field, e.expected, e.got) for e in reply.errors]
            raise PolicyHandshakeError(f"OpenSession rejected by {self.address}", errors)
        for warning in reply.warnings:
            logger.warning("OpenSession: %s", warning)
        self.warnings.extend(reply.warnings)
        try:
            writer = writer_for(reply, ask, form, self._observation, self.address)
            if self.image_encoding == "png":  # named (not asked to pack), images as PNG
                writer = ObservationWriter(self._observation, image_encoding="png")
        except PolicyError:
            request = pb.CloseSessionRequest(session_id=reply.session_id)
            try:
                self._call("CloseSession", request, self._control_timeout_s, retry=True)
            except PolicyError as exc:
                logger.info("CloseSession: %s", exc)
            raise
        return self._new_remote(reply.session_id, writer)

    def _check_image_encodings(self, wanted: list[str]) -> None:
        """Refuse, before OpenSession, image encodings the server does not list (GetSpec)."""
        served = self.spec().capabilities.image_encodings
        missing = [name for name in wanted if name not in served]
        if missing:
            listed = ", ".join(name.upper() for name in served) or "none"
            raise PolicyHandshakeError(
                f"OpenSession: image_encoding {missing[0]!r} asked, but the server at "
                f"{self.address} does not decode {missing[0].upper()} images (a 1.0 server "
                "lists none): send images raw (policy.image_encoding=raw)",
                [("capabilities.image_encodings", f"some of [{listed}]", missing[0].upper())],
            )

    def _new_remote(self, server_id: str, writer: ObservationWriter) -> _RemoteSession:
        request = pb.ActRequest(session_id=server_id)
        if self.mode == "stream":
            request.budget_ms = max(1, math.ceil(self.deadline_s * 1000))
        return _RemoteSession(server_id, 0, request, writer, writer.bind(request))

    def uses_packed(self, session: SessionInfo) -> bool:
        """Whether ``session`` (reset, so open) sends packed observations."""
        return self._remote(session).writer.packed

    def close_session(self, session: SessionInfo) -> None:
        """Close one session on the server (best effort, bounded by the control deadline)."""
        known = self._sessions.pop(session.session_id, None)
        if known is not None:
            request = pb.CloseSessionRequest(session_id=known.server_id)
            self._call("CloseSession", request, self._control_timeout_s, retry=True)

    def close(self) -> None:
        """Close every session, the stream and the channel. Never raises on a dead server."""
        for key in list(self._sessions):
            try:
                self.close_session(SessionInfo(key))
            except PolicyError as exc:
                logger.info("close: %s", exc)
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._channel.close()

    def __enter__(self) -> RemotePolicy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- acting -----------------------------------------------------------------------------

    def _remote(self, session: SessionInfo) -> _RemoteSession:
        known = self._sessions.get(session.session_id)
        if known is None:
            raise PolicyProtocolError(f"act: session {session.session_id!r} was never reset")
        return known

    def act(self, session: SessionInfo, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """One step: send the observation, return the validated action.

        Raises:
            PolicyDeadlineError: No answer within ``deadline_s``.
            PolicyUnavailableError: The server is down or lost the session.
            InvalidActionError: The action has the wrong shape or dtype, is non-finite, or is
                out of bounds.
            PolicyError: Any other failure reported by the server.
        """
        remote = self._remote(session)
        request = remote.request
        remote.fill(observation)
        request.step = remote.step
        remote.step += 1  # a step is used up even if it fails: the next one moves on
        remote.compute = UNMEASURED  # stays so unless this call's reply reports its compute
        start = time.monotonic()
        if self.mode == "stream":
            reply = self._stream_exchange(request)
            self._check_late("ActStream", start)
            if reply.HasField("status") and reply.status.code:
                raise status_error("ActStream", reply.status.code, reply.status.message)
        else:
            reply = self._call("Act", request, self.deadline_s, retry=True)
            self._check_late("Act", start)
        remote.compute = usage_from_proto(reply)
        return self._action_of(reply, "Act")

    def compute_of(self, session: SessionInfo) -> ComputeUsage:
        """What the server reported the last act (or act_batch item) of ``session`` cost.

        Unknown (`protos.compute.UNMEASURED`: joules None, source ``unknown``) when the server
        does not report compute (protocol 1.0) or the call got no usable reply.
        """
        known = self._sessions.get(session.session_id)
        return known.compute if known is not None else UNMEASURED

    def _check_late(self, rpc: str, start: float) -> None:
        # gRPC timers are coarse: a reply that arrives after the deadline is a miss all the same.
        elapsed = time.monotonic() - start
        if elapsed > self.deadline_s:
            raise PolicyDeadlineError(
                f"{rpc}: answered after {elapsed * 1000:.2f} ms, deadline "
                f"{self.deadline_s * 1000:.2f} ms"
            )

    def _stream_exchange(self, request: pb.ActRequest) -> pb.ActResponse:
        if self._stream is None or self._stream.broken:
            if self._stream is not None:
                self._stream.close()
            method = self._channel.stream_stream(
                _ACT_STREAM,
                request_serializer=None,  # requests are serialized before queueing (reused)
                response_deserializer=pb.ActResponse.FromString,
            )
            self._stream = ActStream(method, self._metadata)
        try:
            return self._stream.exchange(request, self.deadline_s)
        except PolicyError as exc:
            if "Exception deserializing response" in str(exc):  # grpc's text for a bad reply
                raise PolicyProtocolError("ActStream: malformed reply (not a message)") from None
            raise

    def _action_of(self, reply: pb.ActResponse, rpc: str) -> np.ndarray:
        assert self._decode_action is not None and self._validate_action is not None
        try:
            action = self._decode_action(reply.action)
        except TensorError as exc:
            raise PolicyProtocolError(f"{rpc}: malformed action: {exc}") from exc
        return self._validate_action(action)

    def act_batch(
        self, sessions: Sequence[SessionInfo], observations: Sequence[Mapping[str, np.ndarray]]
    ) -> list[np.ndarray]:
        """One step of several sessions in one ActBatch call.

        Raises:
            PolicyBatchError: Some items failed (the others' actions are attached).
            PolicyDeadlineError: The call as a whole missed ``deadline_s``.
            PolicyUnavailableError: The server is down.
        """
        if len(sessions) != len(observations):
            raise ValueError(
                f"act_batch: got {len(sessions)} sessions but {len(observations)} observations"
            )
        remotes = [self._remote(s) for s in sessions]
        batch = self._batch_request(remotes)
        pairs = zip(batch.items, remotes, observations, strict=True)
        for (item, fill), remote, observation in pairs:
            fill(observation)
            item.step = remote.step
            remote.step += 1
            remote.compute = UNMEASURED
        start = time.monotonic()
        reply = self._call("ActBatch", batch.message, self.deadline_s, retry=True)
        self._check_late("ActBatch", start)
        if len(reply.items) != len(remotes):
            raise PolicyProtocolError(
                f"ActBatch: expected {len(remotes)} items, got {len(reply.items)}"
            )
        for remote, item in zip(remotes, reply.items, strict=True):
            remote.compute = usage_from_proto(item)  # each item: its share of the one call
        return self._batch_actions(reply)

    def _batch_request(self, remotes: list[_RemoteSession]) -> _BatchRequest:
        """The reused ActBatch request for these sessions (built anew when they change)."""
        server_ids = tuple(remote.server_id for remote in remotes)
        if self._batch is None or self._batch.server_ids != server_ids:
            message = pb.ActBatchRequest()
            items = []
            for remote in remotes:  # each item in its session's observation form
                item = message.items.add(session_id=remote.server_id)
                items.append((item, remote.writer.bind(item)))
            self._batch = _BatchRequest(server_ids, message, items)
        return self._batch

    def _batch_actions(self, reply: pb.ActBatchResponse) -> list[np.ndarray]:
        actions: list[Any] = []
        errors: dict[int, PolicyError] = {}
        for index, item in enumerate(reply.items):
            try:
                if item.HasField("status") and item.status.code:
                    raise status_error("ActBatch", item.status.code, item.status.message)
                actions.append(self._action_of(item, "ActBatch"))
            except PolicyError as exc:
                errors[index] = exc
                actions.append(None)
        if errors:
            raise PolicyBatchError(errors, actions)
        return actions
