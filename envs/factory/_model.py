"""The base of every factory-data model: frozen, and unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A frozen pydantic model that refuses keys it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")
