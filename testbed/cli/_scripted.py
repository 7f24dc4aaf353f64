"""The scripted controller of each task (the composition root's map from env id to ``policies``).

``testbed serve scripted:<site> --env <id>``, the benchmarks and the scripted policy configs
all pick a task's controller here; a task without one has no ``scripted:`` form.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Env id -> (module, factory taking a site id) of its scripted controller.
SCRIPTED: dict[str, tuple[str, str]] = {
    "Testbed/ConveyorSort-v0": ("policies.scripted", "scripted_policy"),
    # TouchPart has the sorting observation; the sorting controller's approach touches the part.
    "Testbed/TouchPart-v0": ("policies.scripted", "scripted_policy"),
    "Testbed/PegInHole-v0": ("policies.scripted_peg", "scripted_peg_policy"),
    "Testbed/Palletize-v0": ("policies.scripted_palletize", "scripted_palletize_policy"),
}


def tuned_sites(env_id: str) -> list[str]:
    """The sites the task's scripted controller has gains for (none: no controller)."""
    if env_id not in SCRIPTED:
        return []
    module = importlib.import_module(SCRIPTED[env_id][0])
    return sorted(module.SITE_GAINS)


def scripted_for(env_id: str, site: str) -> Any:
    """The scripted controller of ``env_id`` tuned for ``site``, or None if there is none."""
    if env_id not in SCRIPTED or site not in tuned_sites(env_id):
        return None
    module_name, factory = SCRIPTED[env_id]
    return getattr(importlib.import_module(module_name), factory)(site)
