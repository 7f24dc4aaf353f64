"""``module:attribute`` names in configs and on the command line, imported once, one way.

`testbed serve module:attr` and a training recipe's ``algo.features_extractor`` both name
Python objects like this (as a Hydra ``_target_`` does with dots), so testbed imports the
code a user points at without depending on its package.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from testbed.errors import UsageError

__all__ = ["import_module_of", "is_import_path"]


def is_import_path(path: str) -> bool:
    """Whether `path` reads ``package.module:attribute`` (every part an identifier)."""
    module, _, name = path.partition(":")
    return all(part.isidentifier() for part in [*module.split("."), name])


def import_module_of(path: str, field: str) -> tuple[ModuleType, str]:
    """The imported module of ``module:attribute`` and the attribute's name.

    Raises:
        UsageError: ``<field>: cannot import '<module>' (<why>)``, if the module does not import.
    """
    module_name, _, attribute = path.partition(":")
    try:
        return importlib.import_module(module_name), attribute
    except ImportError as exc:
        raise UsageError(f"{field}: cannot import {module_name!r} ({exc})") from None
