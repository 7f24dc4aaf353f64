"""The features extractor a training config names (`AlgoConfig.features_extractor`).

A recipe names its extractor as ``module:Class`` (``policies.vision:KeypointExtractor``), as
Hydra names a ``_target_``: the trainer imports it by name, so testbed's code depends on no
policy package, and SB3 records the class by the same path in the saved model.
"""

from __future__ import annotations

from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from testbed.errors import UsageError
from testbed.imports import import_module_of

_EXTRACTOR_HINT = "e.g. algo.features_extractor=policies.vision:KeypointExtractor (docs/cameras.md)"


def extractor_class(path: str) -> type:
    """The class ``module:Class`` names (`AlgoConfig.features_extractor`).

    Raises:
        UsageError: If the module does not import or holds no such features extractor.
    """
    try:
        module, name = import_module_of(path, "algo.features_extractor")
    except UsageError as error:
        raise UsageError(str(error), _EXTRACTOR_HINT) from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseFeaturesExtractor)):
        what = (
            f"no {name!r} in {module.__name__}"
            if found is None
            else ("another kind of class" if isinstance(found, type) else type(found).__name__)
        )
        raise UsageError(
            "algo.features_extractor: expected an SB3 BaseFeaturesExtractor subclass, "
            f"got {path!r} ({what})",
            _EXTRACTOR_HINT,
        )
    return found
