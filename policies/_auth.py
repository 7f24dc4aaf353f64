"""Who may call a policy server: one bearer token per team, checked by an interceptor.

Tokens are compared by their SHA-256 digest (a dictionary lookup, so the time taken says nothing
about the token), and only team names are ever logged or echoed: an offered token may be another
team's. Health checks are exempt, so load balancers can probe without a token. The scheme is
matched without regard to case, as HTTP does (RFC 9110 11.1): ``Bearer``, ``bearer``, ``BEARER``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

logger = logging.getLogger("policies.server")

_HEALTH_PREFIX = "/grpc.health.v1.Health/"

Tokens = str | Sequence[str] | Mapping[str, str] | None
"""What `serve(token=...)` accepts: one token, a list (teams ``team-1``, ...), or team -> token."""


def _digest(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return hashlib.sha256(data).digest()


class TeamTokens:
    """Bearer tokens by team; `team_of` names the team a call's metadata authenticates.

    Args:
        tokens: One token, a list of tokens (named ``team-1``, ``team-2``, ...), or a mapping
            of team name to token.

    Raises:
        ValueError: On an empty team name or token, or a token shared by two teams (without
            the tokens in the message).
    """

    def __init__(self, tokens: Tokens) -> None:
        by_team = _by_team(tokens)
        self._teams: dict[bytes, str] = {}
        for team, token in by_team.items():
            if not team.strip() or not token.strip():
                raise ValueError(f"tokens: team {team!r} needs a non-empty name and token")
            digest = _digest(token)
            if digest in self._teams:
                raise ValueError(
                    f"tokens: teams {self._teams[digest]!r} and {team!r} share a token"
                )
            self._teams[digest] = team

    def __bool__(self) -> bool:
        return bool(self._teams)

    @property
    def teams(self) -> list[str]:
        """The team names, sorted."""
        return sorted(self._teams.values())

    def team_of(self, metadata: Iterable[tuple[str, Any]] | None) -> str | None:
        """The team whose token the ``authorization`` metadata carries, or None.

        The value is ``<scheme> <token>``: the scheme ``Bearer`` in any case, one or more spaces,
        then the token exactly.
        """
        for key, value in metadata or ():
            if key == "authorization":
                text = value if isinstance(value, str) else bytes(value).decode("latin-1")
                scheme, _, token = text.partition(" ")
                if scheme.lower() != "bearer" or not token.strip(" "):
                    return None
                return self._teams.get(_digest(token.lstrip(" ")))
        return None


def _by_team(tokens: Tokens) -> dict[str, str]:
    if tokens is None:
        return {}
    if isinstance(tokens, str):
        return {"default": tokens}
    if isinstance(tokens, Mapping):
        return {str(team): str(token) for team, token in tokens.items()}
    return {f"team-{i}": str(token) for i, token in enumerate(tokens, start=1)}


def read_team_tokens(path: str | Path) -> dict[str, str]:
    """Read a tokens file: one ``team: token`` per line; blank lines and ``#`` comments skipped.

    Raises:
        ValueError: Naming the file and line of a malformed entry or a repeated team (never
            the token itself).
    """
    tokens: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        team, sep, token = (part.strip() for part in text.partition(":"))
        where = f"{path}: line {number}"
        if not sep or not team or not token or any(c.isspace() for c in token):
            raise ValueError(f"{where}: expected 'team: token' (one token without spaces)")
        if team in tokens:
            raise ValueError(f"{where}: team {team!r} is listed twice")
        tokens[team] = token
    if not tokens:
        raise ValueError(f"{path}: expected at least one 'team: token' line")
    return tokens


class TokenInterceptor(grpc.ServerInterceptor):
    """Answers UNAUTHENTICATED to calls without a known team's ``Bearer`` token."""

    def __init__(self, tokens: TeamTokens) -> None:
        self._tokens = tokens

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        if method.startswith(_HEALTH_PREFIX) or self._tokens.team_of(metadata) is not None:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        return None if handler is None else _denied(handler, method)


def _denied(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        # Never echo or log the offered token: it may be another team's.
        logger.warning("%s: refused a call from %s without a valid token", method, context.peer())
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{method}: missing or invalid token")

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)
