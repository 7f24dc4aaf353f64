"""Camera observations: image fields rendered from a camera station every control step.

Off by default. ``camera_obs`` (an env keyword, so ``task.env_kwargs.camera_obs`` in a campaign
config and ``env_kwargs`` in every episode record) turns them on::

    camera_obs: {station: cam1, width: 96, height: 96, depth: false}

=========  ==============================  ==================================================
field      space                           meaning
=========  ==============================  ==================================================
image      Box(0, 255, (H, W, 3), uint8)   RGB from the camera, rendered after the step
depth      Box(near, far, (H, W), float32)  distance along the camera axis in metres (if
                                           ``depth: true``)
=========  ==============================  ==================================================

``station`` names a ``camera`` row of the bundle's stations.csv (looking along its x axis); left
out or null, the cell camera (the whole cell framed from the layout's bounds, as replay films
it). Images come from the env's pinned ``renderer`` (``tiny``: TinyRenderer on the CPU, the
default, bit-identical for the same seed and actions; ``egl`` where a GPU or Mesa offers it),
one render per control step, so at the control rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.render import Camera

__all__ = ["CameraObs", "IMAGE", "DEPTH"]

IMAGE = "image"
DEPTH = "depth"
_KEYS = ("station", "width", "height", "depth")
_MIN_SIZE, _MAX_SIZE = 8, 1024


@dataclass(frozen=True)
class CameraObs:
    """What image fields an env adds to its observation, and from which camera.

    Attributes:
        station: A camera station id of the site's stations.csv, or None for the cell camera.
        width: Image width in pixels.
        height: Image height in pixels.
        depth: Also a ``depth`` field (float32 metres).
    """

    station: str | None = None
    width: int = 96
    height: int = 96
    depth: bool = False

    @classmethod
    def parse(cls, value: Mapping[str, Any] | CameraObs | None) -> CameraObs | None:
        """The options of a ``camera_obs`` mapping (None or an empty mapping: off).

        Raises:
            ValueError: Naming the key, the value and what was expected.
        """
        if value is None or isinstance(value, CameraObs):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"camera_obs: expected a mapping of {_KEYS}, got {value!r}")
        if not value:
            return None
        unknown = sorted(set(value) - set(_KEYS))
        if unknown:
            raise ValueError(f"camera_obs: unknown key(s) {unknown}; expected some of {_KEYS}")
        station = value.get("station")
        if station is not None and (not isinstance(station, str) or not station):
            raise ValueError(f"camera_obs.station: expected a camera station id, got {station!r}")
        sizes = {}
        for key in ("width", "height"):
            size = value.get(key, 96)
            if isinstance(size, bool) or not isinstance(size, int):
                raise ValueError(f"camera_obs.{key}: expected an integer, got {size!r}")
            if not _MIN_SIZE <= size <= _MAX_SIZE:
                raise ValueError(
                    f"camera_obs.{key}: expected {_MIN_SIZE} .. {_MAX_SIZE} pixels, got {size}"
                )
            sizes[key] = size
        depth = value.get("depth", False)
        if not isinstance(depth, bool):
            raise ValueError(f"camera_obs.depth: expected true or false, got {depth!r}")
        return cls(station, sizes["width"], sizes["height"], depth)

    @classmethod
    def from_text(cls, text: str) -> CameraObs:
        """Options from a command line's ``WxH[@station][+depth]`` (``64x64``, ``96x96@cam1``).

        Raises:
            ValueError: Naming the text and the form expected.
        """
        spec, plus, extra = text.partition("+")
        size, _, station = spec.partition("@")
        width, _, height = size.lower().partition("x")
        if not (width.isdigit() and height.isdigit()) or (plus and extra != "depth"):
            raise ValueError(
                f"camera_obs: expected WIDTHxHEIGHT[@STATION][+depth] (64x64, 96x96@cam1), "
                f"got {text!r}"
            )
        options = {"width": int(width), "height": int(height), "depth": bool(plus)}
        parsed = cls.parse({**options, "station": station or None})
        assert parsed is not None
        return parsed

    def as_kwargs(self) -> dict[str, Any]:
        """The ``camera_obs`` mapping of these options (env keyword arguments, records)."""
        return {
            "station": self.station,
            "width": self.width,
            "height": self.height,
            "depth": self.depth,
        }

    def spaces(self, camera: Camera | None = None) -> dict[str, spaces.Box[Any]]:
        """The image fields' spaces (depth bounded by the camera's near and far planes)."""
        shape = (self.height, self.width)
        fields: dict[str, spaces.Box[Any]] = {IMAGE: spaces.Box(0, 255, (*shape, 3), np.uint8)}
        if self.depth:
            near, far = (camera.near_m, camera.far_m) if camera else (0.02, 10.0)
            fields[DEPTH] = spaces.Box(near, far, shape, dtype=np.float32)
        return fields
