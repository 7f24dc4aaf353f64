"""The `PolicyService` implementation: wraps any object with spec(), reset() and act()."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, NoReturn

import grpc
import numpy as np

from policies._handshake import check_open
from policies._limits import CallGuard
from policies._observations import ObservationDecoder, field_failure
from policies._sessions import Session, SessionTable, StepFailure
from policies.protocol import Policy
from protos.actions import ActionCheck, BadAction
from protos.compute import ComputeMeter, ComputeUsage, usage_to_proto
from protos.specs import spec_to_proto
from protos.tensors import TensorError, to_tensor
from protos.v1 import policy_service_pb2 as pb
from protos.v1 import policy_service_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _abort(context: grpc.ServicerContext, failure: StepFailure) -> NoReturn:
    context.abort(failure.code, failure.message)
    raise AssertionError("unreachable")  # context.abort always raises


class PolicyServicer(pb_grpc.PolicyServiceServicer):
    """Serves one `Policy` to many sessions.

    Args:
        policy: The policy.
        max_sessions: Largest number of open sessions (RESOURCE_EXHAUSTED beyond).
        guard: Names callers and applies their rate limit on every request (each ActStream
            message counts); None: no limit, callers unnamed in the log.
        meter: Measures each policy call for ``ActResponse.compute``; None: a default
            `ComputeMeter` (RAPL where readable, else CPU time x 12 W per core).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        max_sessions: int = 1024,
        guard: CallGuard | None = None,
        meter: ComputeMeter | None = None,
    ) -> None:
        self._policy = policy
        self._meter = meter if meter is not None else ComputeMeter()
        self._spec = policy.spec()
        self._spec_proto = spec_to_proto(self._spec)
        self._decode = ObservationDecoder(self._spec)
        self._check_action = ActionCheck(
            self._spec.action, chunking=self._spec.capabilities.action_chunking
        )
        self._sessions = SessionTable(max_sessions)
        self._max_batch = self._spec.capabilities.max_batch
        self._guard = guard

    @property
    def sessions(self) -> SessionTable:
        """The open sessions."""
        return self._sessions

    def close_session(self, session: Session) -> None:
        """Tell the policy a session ended (its optional ``close``); used for reaped sessions."""
        close = getattr(self._policy, "close", None)
        if close is not None:
            close(session.info)

    def _admit(self, context: grpc.ServicerContext, rpc: str) -> None:
        """Pass if the caller's rate allows the request; abort RESOURCE_EXHAUSTED if not."""
        if self._guard is not None:
            try:
                self._guard.admit(context, rpc)
            except StepFailure as failure:
                _abort(context, failure)

    def _caller(self, context: grpc.ServicerContext) -> str:
        """Who is calling, for the log: ``team <name>`` or ``peer <host>`` (never a token)."""
        return self._guard.caller(context) if self._guard is not None else "a client"

    # --- session lifecycle ------------------------------------------------------------------

    def GetSpec(self, request: pb.GetSpecRequest, context: grpc.ServicerContext) -> pb.PolicySpec:
        """Return the policy's spec."""
        self._admit(context, "GetSpec")
        return self._spec_proto

    def OpenSession(
        self, request: pb.OpenSessionRequest, context: grpc.ServicerContext
    ) -> pb.OpenSessionResponse:
        """Check the offered spaces; open a session and reset the policy if they match."""
        self._admit(context, "OpenSession")
        errors, warnings = check_open(self._spec, request)
        reply = pb.OpenSessionResponse(warnings=warnings, spec=self._spec_proto)
        if errors:
            reply.errors.extend(errors)
            return reply
        seed = request.seed if request.HasField("seed") else None
        # Asked for (and served, or check_open would have refused): the layout is the one of
        # the policy's declared fields, the same for every session, fixed from here on.
        packed = request.capabilities.packed_observations
        try:
            session = self._sessions.open(
                request.site, request.campaign, request.episode, seed, packed=packed
            )
        except StepFailure as failure:
            _abort(context, failure)
        if packed:
            reply.packed_layout.CopyFrom(self._decode.layout_proto)
        self._call(context, "OpenSession", self._policy.reset, session.info)
        logger.info(
            "OpenSession: %s opened session %s (site %r, episode %d)",
            self._caller(context), session.info.session_id, request.site, request.episode,
        )  # fmt: skip
        reply.accepted = True
        reply.session_id = session.info.session_id
        return reply

    def ResetSession(
        self, request: pb.ResetSessionRequest, context: grpc.ServicerContext
    ) -> pb.ResetSessionResponse:
        """Start a new episode on an open session."""
        self._admit(context, "ResetSession")
        session = self._get(context, request.session_id, "ResetSession")
        seed = request.seed if request.HasField("seed") else None
        with session.lock:
            session.restart(replace(session.info, episode=request.episode, seed=seed))
            self._call(context, "ResetSession", self._policy.reset, session.info)
        return pb.ResetSessionResponse()

    def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.ServicerContext
    ) -> pb.CloseSessionResponse:
        """Close a session (idempotent: closing an unknown session is not an error)."""
        self._admit(context, "CloseSession")
        session = self._sessions.pop(request.session_id)
        if session is not None:
            caller = self._caller(context)
            logger.info("CloseSession: %s closed session %s", caller, request.session_id)
        close = getattr(self._policy, "close", None)
        if session is not None and close is not None:
            self._call(context, "CloseSession", close, session.info)
        return pb.CloseSessionResponse()

    def _get(self, context: grpc.ServicerContext, session_id: str, rpc: str) -> Session:
        try:
            return self._sessions.get(session_id, rpc)
        except StepFailure as failure:
            _abort(context, failure)

    def _call(
        self, context: grpc.ServicerContext, rpc: str, method: Callable[..., Any], *args: Any
    ) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            logger.exception("%s: policy raised", rpc)
            context.abort(grpc.StatusCode.INTERNAL, f"{rpc}: policy raised {exc!r}")

    # --- acting -----------------------------------------------------------------------------

    def Act(self, request: pb.ActRequest, context: grpc.ServicerContext) -> pb.ActResponse:
        """One step; errors are gRPC status codes."""
        self._admit(context, "Act")
        try:
            return self._step(request, None, "Act")
        except StepFailure as failure:
            _abort(context, replace_message(failure, "Act"))

    def ActStream(
        self, request_iterator: Iterator[pb.ActRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ActResponse]:
        """Serve steps on one stream; errors are in-band so the stream survives them."""
        for request in request_iterator:
            received = time.monotonic()
            try:
                if self._guard is not None:
                    self._guard.admit(context, "ActStream")
                yield self._step(request, _respond_by(request, received), "ActStream")
            except StepFailure as failure:
                yield _failed(request, replace_message(failure, "ActStream"))

    def ActBatch(
        self, request: pb.ActBatchRequest, context: grpc.ServicerContext
    ) -> pb.ActBatchResponse:
        """Serve steps of several sessions in one call, each with its own in-band status."""
        self._admit(context, "ActBatch")
        if not self._spec.capabilities.batching:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "ActBatch: this policy does not batch")
        if len(request.items) > self._max_batch:
            context.abort(
                _INVALID,
                f"ActBatch: items: expected at most {self._max_batch}, got {len(request.items)}",
            )
        return pb.ActBatchResponse(items=self._batch(request.items))

    def _step(self, request: pb.ActRequest, deadline: float | None, rpc: str) -> pb.ActResponse:
        session = self._sessions.get(request.session_id, rpc)
        with session.lock:
            cached = session.cached_or_check(request.step)
            observation = self._decode(request, session.packed)
            if cached is not None:
                session.check_retry(request.step, observation)
                return cached
            # A deadline reached is passed: budget_ms = 0 never runs the policy.
            if deadline is not None and time.monotonic() >= deadline:
                raise StepFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "respond_by passed on arrival")
            mark = self._meter.start()
            action = self._act(session, observation)
            usage = self._meter.stop(mark)
            response = self._record(session, request.step, observation, action, usage)
        if deadline is not None and time.monotonic() >= deadline:
            # The step is answered (a retry gets the action); this reply only says it is late.
            raise StepFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "respond_by passed during act")
        return response

    def _act(self, session: Session, observation: Mapping[str, np.ndarray]) -> Any:
        try:
            return self._policy.act(session.info, observation)
        except Exception as exc:
            logger.exception("act: policy raised")
            raise StepFailure(grpc.StatusCode.INTERNAL, f"policy.act raised {exc!r}") from exc

    def _record(
        self,
        session: Session,
        step: int,
        observation: dict[str, np.ndarray],
        action: Any,
        usage: ComputeUsage,
    ) -> pb.ActResponse:
        """Check the policy's action against its own spec; answer and remember the step."""
        try:
            tensor = to_tensor(self._check_action(action))
        except (BadAction, TensorError) as exc:
            text = f"policy {self._spec.policy_id!r} returned a bad action: {exc}"
            logger.warning("session %s step %d: %s", session.info.session_id, step, text)
            errors = [exc.error] if isinstance(exc, BadAction) else []
            raise StepFailure(grpc.StatusCode.INTERNAL, text, errors) from exc
        response = pb.ActResponse(session_id=session.info.session_id, step=step, action=tensor)
        response.status.SetInParent()  # OK explicitly: a generated client sees code 0, not null
        usage_to_proto(usage, response.compute)
        session.last_step = step
        session.last_response = response
        session.last_observation = observation
        return response

    def _batch(self, items: Any) -> list[pb.ActResponse]:
        requests = list(items)
        replies: list[pb.ActResponse | None] = [None] * len(requests)
        named: list[tuple[int, Session]] = []
        seen: set[str] = set()
        for index, item in enumerate(requests):
            session_id = item.session_id
            try:
                if session_id in seen:
                    raise field_failure("session_id", "each session once", "duplicate")
                seen.add(session_id)
                named.append((index, self._sessions.get(session_id, "ActBatch")))
            except StepFailure as failure:
                replies[index] = _failed(item, replace_message(failure, "ActBatch"))
        with contextlib.ExitStack() as locks:
            # A fixed lock order, so concurrent batches over the same sessions cannot deadlock.
            for _, session in sorted(named, key=lambda pair: pair[1].info.session_id):
                locks.enter_context(session.lock)
            ready = self._prepare_batch(requests, named, replies)
            mark = self._meter.start()
            actions = self._act_many(ready)
            share = self._meter.stop(mark).share(max(len(ready), 1))  # one call, equal shares
            for (index, session, obs), action in zip(ready, actions, strict=True):
                try:
                    if isinstance(action, StepFailure):
                        raise action
                    step = requests[index].step
                    replies[index] = self._record(session, step, obs, action, share)
                except StepFailure as failure:
                    replies[index] = _failed(requests[index], replace_message(failure, "ActBatch"))
        return [r for r in replies if r is not None]

    def _prepare_batch(
        self,
        requests: list[pb.ActRequest],
        named: list[tuple[int, Session]],
        replies: list[pb.ActResponse | None],
    ) -> list[tuple[int, Session, dict[str, np.ndarray]]]:
        ready = []
        for index, session in named:
            request = requests[index]
            try:
                cached = session.cached_or_check(request.step)
                observation = self._decode(request, session.packed)
                if cached is None:
                    ready.append((index, session, observation))
                else:
                    session.check_retry(request.step, observation)
                    replies[index] = cached
            except StepFailure as failure:
                replies[index] = _failed(request, replace_message(failure, "ActBatch"))
        return ready

    def _act_many(self, ready: list[tuple[int, Session, dict[str, np.ndarray]]]) -> list[Any]:
        act_batch = getattr(self._policy, "act_batch", None)
        if act_batch is None or not ready:
            out: list[Any] = []
            for _, session, observation in ready:
                try:
                    out.append(self._act(session, observation))
                except StepFailure as failure:
                    out.append(failure)
            return out
        try:
            actions = list(act_batch([s.info for _, s, _ in ready], [o for _, _, o in ready]))
        except Exception as exc:
            logger.exception("act_batch: policy raised")
            raised = StepFailure(grpc.StatusCode.INTERNAL, f"policy.act_batch raised {exc!r}")
            return [raised] * len(ready)
        if len(actions) != len(ready):
            miscounted = StepFailure(
                grpc.StatusCode.INTERNAL,
                f"policy.act_batch returned {len(actions)} actions for {len(ready)} sessions",
            )
            return [miscounted] * len(ready)
        return actions


def replace_message(failure: StepFailure, rpc: str) -> StepFailure:
    """Prefix the failure's message with the RPC name (``Act: observation.x: ...``)."""
    if failure.message.startswith(f"{rpc}:"):
        return failure
    return StepFailure(failure.code, f"{rpc}: {failure.message}", failure.errors)


def _failed(request: pb.ActRequest, failure: StepFailure) -> pb.ActResponse:
    return pb.ActResponse(session_id=request.session_id, step=request.step, status=failure.status())


def _respond_by(request: pb.ActRequest, received: float) -> float | None:
    which = request.WhichOneof("respond_by")
    if which == "budget_ms":
        return received + request.budget_ms / 1000.0
    if which == "deadline":
        wall = request.deadline.seconds + request.deadline.nanos * 1e-9
        return received + (wall - time.time())
    return None
