"""The base of every factory-data model: frozen, and unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$"
"""A station, part or person id: letters, digits and ``_.:-``, at most 63 characters."""


class Frozen(BaseModel):
    """A frozen pydantic model that refuses keys it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")
