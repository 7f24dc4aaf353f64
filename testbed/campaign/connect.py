"""`PolicyConnection`: turns a `PolicyConfig` into a `Policy` for one trial, and recovers it.

- ``inprocess``: ``policy.factory`` is instantiated with Hydra (``_target_``), so the testbed
  never imports a policy package itself.
- ``remote``: a `RemotePolicy` to ``policy.address`` (TLS files and a token from an environment
  variable, if configured).
- ``managed``: a `ManagedServer` runs ``testbed serve <policy.serve>`` on 127.0.0.1 for the trial;
  if it dies, `recover` restarts it (at most ``policy.max_restarts`` times).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from hydra.utils import instantiate

from testbed.campaign.managed import ManagedServer
from testbed.config import PolicyConfig
from testbed.errors import PolicyUnavailableError
from testbed.link.client import RemotePolicy
from testbed.link.policy import Policy


class PolicyConnection:
    """The policy of one trial.

    Args:
        config: How to reach the policy.
        observation_space: The env's observation space (for the session handshake).
        action_space: The env's action space.
        log_dir: Where a managed server writes its log.
        env_id: The trial's env id, passed to a managed server (``testbed serve --env``).
        server_args: More options for a managed server (how it measures compute energy).
    """

    def __init__(
        self,
        config: PolicyConfig,
        observation_space: Any,
        action_space: Any,
        log_dir: Path,
        env_id: str | None = None,
        server_args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self._spaces = (observation_space, action_space)
        self._server = (
            ManagedServer(str(config.serve), Path(log_dir) / "policy_server.log",
                          config.startup_timeout_s, env_id, server_args)
            if config.kind == "managed" else None
        )  # fmt: skip
        self.policy: Policy | None = None
        self.restarts = 0

    def open(self) -> Policy:
        """Connect (starting a managed server first); returns the policy."""
        if self.config.kind == "inprocess":
            self.policy = instantiate(self.config.factory)
            return self.policy
        address = self._server.start() if self._server else str(self.config.address)
        self.policy = self._remote(address)
        return self.policy

    def recover(self) -> bool:
        """After the policy became unreachable: restart a managed server if allowed.

        Returns:
            True if a fresh connection is ready, False if the trial should stop.
        """
        if self._server is None or self.restarts >= self.config.max_restarts:
            return False
        self.restarts += 1
        self._close_client()
        try:
            self.open()
        except PolicyUnavailableError:
            return False
        return True

    def _remote(self, address: str) -> RemotePolicy:
        config = self.config
        observation_space, action_space = self._spaces
        return RemotePolicy(
            address,
            observation_space=observation_space,
            action_space=action_space,
            mode=config.mode,  # type: ignore[arg-type]  # validated: unary, stream or batch
            tls_ca=config.tls.ca,
            tls_cert=config.tls.cert,
            tls_key=config.tls.key,
            tls_server_name=config.tls.server_name,
            token=_token(config),
            deadline_s=config.deadline_ms / 1000.0,
            max_batch=config.batch_size,
            observation_form=config.observation_form,  # type: ignore[arg-type]  # validated
            image_encoding=config.image_encoding,  # type: ignore[arg-type]  # validated
        )

    def _close_client(self) -> None:
        close = getattr(self.policy, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001  # the peer may already be gone; closing is best effort
                pass
        self.policy = None

    def close(self) -> None:
        """Close the client and stop a managed server."""
        self._close_client()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> PolicyConnection:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _token(config: PolicyConfig) -> str | None:
    if not config.token_env:
        return None
    token = os.environ.get(config.token_env, "").strip()
    if not token:
        raise ValueError(
            f"policy.token_env: environment variable {config.token_env!r} is unset or empty "
            f"(it must hold the bearer token of policy {config.name!r})"
        )
    return token
