"""What a model team uses: the `Policy` protocol, `serve()` and reference policies."""

from policies.protocol import Capabilities, FieldSpec, Policy, PolicySpec, SessionInfo
from policies.server import PolicyServer, TlsConfig, serve

__all__ = [
    "Capabilities",
    "FieldSpec",
    "Policy",
    "PolicyServer",
    "PolicySpec",
    "SessionInfo",
    "TlsConfig",
    "serve",
]
