"""What every scripted controller shares: its tuned gains by site and its spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from protos.specs import Capabilities, FieldSpec, PolicySpec

G = TypeVar("G")


def tuned_gains(site_gains: Mapping[str, G], home_site: str, gains: G | None) -> G:
    """``gains`` if given, else the ones tuned for ``home_site``.

    Raises:
        ValueError: If no gains are given and none are tuned for ``home_site``.
    """
    if gains is not None:
        return gains
    if home_site not in site_gains:
        raise ValueError(f"no tuned gains for site {home_site!r}; known: {sorted(site_gains)}")
    return site_gains[home_site]


def controller_spec(
    kind: str, home_site: str, fields: Mapping[str, tuple[int, float, float]]
) -> PolicySpec:
    """The spec of a scripted controller.

    Its id is ``scripted-<kind>@<site>``; it reads the observation ``fields`` (name -> (size,
    low, high), float32) and writes the 4-float action.
    """
    observation = {
        name: FieldSpec((size,), "float32", low, high) for name, (size, low, high) in fields.items()
    }
    return PolicySpec(
        policy_id=f"scripted-{kind}@{home_site}",
        version="1.0.0",
        observation=observation,
        action=FieldSpec((4,), "float32", -1.0, 1.0),
        capabilities=Capabilities(streaming=True, batching=True),
    )
