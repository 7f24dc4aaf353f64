"""Conformance suite of the policy contract: named checks a model team runs against its server.

Every check talks to the server through the generated stubs of
``protos/v1/policy_service.proto`` alone (plus ``grpc.health.v1`` and reflection), as a client
written in any language would, and checks one promise of the .proto and
docs/policy_service.md: health, GetSpec, the handshake (accepted, and rejected with one field
error per mismatch), ``protocol_version``, capabilities, the explicit OK status, error texts,
steps and retries, ``respond_by``, ActBatch's ``max_batch``, the server's check of its own
actions, the bearer token in any case of the scheme, and reflection. A healthy server cannot be
made to misbehave from outside, so checks of the server's duties (a bad action is INTERNAL)
verify what can be seen from outside, and the rest verify the server's answer to a
misbehaving client (a malformed tensor, an old step, a retry with another observation, a
batch over ``max_batch``).

``testbed check-policy`` runs it (`testbed.link.check`); `run_conformance` runs it from code.
The checks themselves are in `testbed.link._conformance_checks`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos.specs import (
    PROTOCOL_VERSION,
    FieldSpec,
    PolicySpec,
    field_to_proto,
    spec_from_proto,
)
from protos.tensors import to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc

#: One check's result: its name, True (pass) / False (fail) / None (skipped), and the detail.
CheckRow = tuple[str, bool | None, str]
SERVICE = "testbed.policy.v1.PolicyService"


class ConformanceError(Exception):
    """A check found the server breaking the contract (the message says where and how)."""


def expect(condition: object, message: str) -> None:
    """Fail the running check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConformanceError(message)


def code_number(code: grpc.StatusCode) -> int:
    """The number an in-band ``StepStatus.code`` carries for ``code``."""
    return int(code.value[0])


@dataclass
class Probe:
    """A connection to the server under test and what the checks share.

    Attributes:
        channel: The gRPC channel (plaintext, or TLS with ``tls_ca``).
        observation: The env's observation fields, offered at the handshake.
        action: The env's action space, offered at the handshake.
        site: Site sent at the handshake.
        token: Bearer token, if the server wants one.
        timeout_s: Deadline of every call.
        spec: The server's GetSpec reply, decoded (set by the ``GetSpec`` check).
    """

    channel: grpc.Channel
    observation: Mapping[str, FieldSpec]
    action: FieldSpec
    site: str
    token: str | None = None
    timeout_s: float = 5.0
    spec: PolicySpec | None = None
    opened: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stub = pb_grpc.PolicyServiceStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The ``authorization`` metadata of every call (None without a token)."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else None

    @property
    def policy(self) -> PolicySpec:
        """The server's spec (GetSpec is fetched on first use)."""
        if self.spec is None:
            self.spec = spec_from_proto(self.call("GetSpec", pb.GetSpecRequest()))
        return self.spec

    def call(self, rpc: str, request: Any, metadata: Any = "default") -> Any:
        """A unary call of PolicyService with the probe's deadline and token."""
        method = getattr(self.stub, rpc)
        return method(
            request,
            timeout=self.timeout_s,
            metadata=self.metadata if metadata == "default" else metadata,
        )

    def fails(self, rpc: str, request: Any, code: grpc.StatusCode, what: str) -> str:
        """Make a call that must fail with ``code``; returns the error's details."""
        try:
            self.call(rpc, request)
        except grpc.RpcError as exc:
            expect(
                exc.code() == code,
                f"{what}: expected {rpc} to fail {code.name}, got {exc.code().name} "
                f"({exc.details()})",
            )
            return str(exc.details() or "")
        raise ConformanceError(f"{what}: expected {rpc} to fail {code.name}, it answered OK")

    def stream(self, requests: Iterable[pb.ActRequest]) -> list[pb.ActResponse]:
        """Send ``requests`` on one ActStream and return every reply."""
        replies = self.stub.ActStream(iter(list(requests)), timeout=self.timeout_s,
                                      metadata=self.metadata)  # fmt: skip
        return list(replies)

    def open_request(self, **overrides: Any) -> pb.OpenSessionRequest:
        """The handshake a conforming client sends: the env's spaces, stated capabilities."""
        caps = self.policy.capabilities
        request = pb.OpenSessionRequest(
            observation=[field_to_proto(n, f) for n, f in self.observation.items()],
            action=field_to_proto("action", self.action),
            site=self.site,
            campaign="conformance",
            episode=0,
            seed=0,
            protocol_version=PROTOCOL_VERSION,
            capabilities=pb.Capabilities(action_chunking=caps.action_chunking),
        )
        for key, value in overrides.items():
            setattr(request, key, value)
        return request

    def open(self, **overrides: Any) -> str:
        """Open a session (it must be accepted); returns its id."""
        reply = self.call("OpenSession", self.open_request(**overrides))
        errors = "; ".join(f"{e.field}: expected {e.expected}, got {e.got}" for e in reply.errors)
        expect(reply.accepted and reply.session_id, f"OpenSession rejected: {errors}")
        self.opened.append(reply.session_id)
        return str(reply.session_id)

    def values(self, seed: int) -> dict[str, np.ndarray]:
        """An observation within every offered field's bounds (clipped to [-1, 1])."""
        rng = np.random.default_rng(seed)
        values = {}
        for name, spec in self.observation.items():
            low = np.maximum(spec.low if spec.low is not None else -1.0, -1.0)
            high = np.minimum(spec.high if spec.high is not None else 1.0, 1.0)
            values[name] = rng.uniform(low, high, spec.shape).astype(spec.dtype)
        return values

    def act(
        self, session_id: str, step: int, seed: int = 0, values: Mapping[str, Any] | None = None
    ) -> pb.ActRequest:
        """An ActRequest of ``session_id`` at ``step`` (observation from ``seed``)."""
        arrays = values if values is not None else self.values(seed)
        observation = {name: to_tensor(np.asarray(a)) for name, a in arrays.items()}
        return pb.ActRequest(session_id=session_id, step=step, observation=observation)

    def declared(self) -> list[str]:
        """Observation fields the policy declares and the env offers (in the env's order)."""
        return [n for n in self.observation if n in self.policy.observation]

    def close_all(self) -> None:
        """Close every session the checks opened (best effort)."""
        for session_id in self.opened:
            try:
                self.call("CloseSession", pb.CloseSessionRequest(session_id=session_id))
            except grpc.RpcError:
                pass
        self.opened.clear()


Check = Callable[[Probe], "str | None"]


def run_conformance(
    address: str,
    observation: Mapping[str, FieldSpec],
    action: FieldSpec,
    *,
    site: str = "kr-changwon",
    token: str | None = None,
    tls_ca: Path | None = None,
    timeout_s: float = 5.0,
    only: Iterable[str] | None = None,
) -> list[CheckRow]:
    """Run the conformance checks (all, or those named in ``only``) against ``address``.

    A failed ``health`` or ``handshake: accepted`` stops the run: the later checks need a
    server that serves and accepts the env's spaces.

    Args:
        address: ``host:port`` of the server.
        observation: The env's observation fields, offered at the handshake.
        action: The env's action space.
        site: Site sent at the handshake.
        token: Bearer token the server wants (the token check is skipped without one).
        tls_ca: CA certificate (PEM) of a TLS server; None for plaintext.
        timeout_s: Deadline of each call.
        only: Names of the checks to run (`CHECK_NAMES`); None runs every check.

    Raises:
        ValueError: If ``only`` names an unknown check.
    """
    from testbed.link._conformance_checks import CHECKS, STOP_ON_FAILURE

    names = list(CHECKS) if only is None else list(only)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown conformance check(s) {unknown}: choose from {list(CHECKS)}")
    if tls_ca is None:
        channel = grpc.insecure_channel(address)
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_ca.read_bytes()))
    rows: list[CheckRow] = []
    with channel:
        probe = Probe(channel, observation, action, site, token, timeout_s)
        for name in names:
            row = run_check(name, CHECKS[name], probe)
            rows.append(row)
            probe.close_all()
            if row[1] is False and name in STOP_ON_FAILURE:
                break
    return rows


def run_check(name: str, check: Check, probe: Probe) -> CheckRow:
    """Run one check: its detail (pass), None (skipped), or the failure it found."""
    start = time.monotonic()
    try:
        detail = check(probe)
    except ConformanceError as exc:
        return name, False, str(exc)
    except grpc.RpcError as exc:
        code = exc.code().name if hasattr(exc, "code") else "?"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return name, False, f"unexpected {code}: {details}"
    except Exception as exc:  # noqa: BLE001  # a malformed reply must fail the check, not the run
        return name, False, f"{type(exc).__name__}: {exc}"
    if detail is None:
        return name, None, "not advertised"
    return name, True, f"{detail} ({(time.monotonic() - start) * 1000:.0f} ms)"
