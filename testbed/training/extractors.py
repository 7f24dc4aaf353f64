"""The features extractor a training config names (`AlgoConfig.features_extractor`).

A recipe names its extractor as ``module:Class`` (``policies.vision:KeypointExtractor``), as
Hydra names a ``_target_``: the trainer imports it by name, so testbed's code depends on no
policy package, and SB3 records the class by the same path in the saved model.
"""

from __future__ import annotations

import importlib

from testbed.errors import UsageError

_EXTRACTOR_HINT = "e.g. algo.features_extractor=policies.vision:KeypointExtractor (docs/cameras.md)"


def extractor_class(path: str) -> type:
    """The class ``module:Class`` names (`AlgoConfig.features_extractor`).

    Raises:
        UsageError: If the module does not import or holds no such features extractor.
    """
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    module_name, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name, None)
    except ImportError as exc:
        raise UsageError(
            f"algo.features_extractor: cannot import {module_name!r} ({exc})", _EXTRACTOR_HINT
        ) from None
    if not (isinstance(found, type) and issubclass(found, BaseFeaturesExtractor)):
        what = (
            f"no {name!r} in {module_name}"
            if found is None
            else ("another kind of class" if isinstance(found, type) else type(found).__name__)
        )
        raise UsageError(
            "algo.features_extractor: expected an SB3 BaseFeaturesExtractor subclass, "
            f"got {path!r} ({what})",
            _EXTRACTOR_HINT,
        )
    return found
