"""The SDK's view of the contract: the `Policy` protocol and its records, re-exported.

`Policy` lives in `protos.policy` and the records (`PolicySpec`, `FieldSpec`, `Capabilities`,
`SessionInfo`) in `protos.specs`, so the SDK and the testbed share one definition of each
without importing each other. See `protos.policy` for the optional methods (``act_batch``,
``close``, ``warmup``) and the threading rules.
"""

from __future__ import annotations

from protos.policy import Policy
from protos.specs import PROTOCOL_VERSION, Capabilities, FieldSpec, PolicySpec, SessionInfo

__all__ = [
    "PROTOCOL_VERSION",
    "Capabilities",
    "FieldSpec",
    "Policy",
    "PolicySpec",
    "SessionInfo",
]
