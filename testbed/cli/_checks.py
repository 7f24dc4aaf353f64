"""Checks of command-line values, made before any work starts; each failure is a `UsageError`.

Shared by the commands that take the same kind of value (``--site``, an address, a POLICY spec
of ``testbed serve`` or ``policy.serve``), so they are refused with the same words everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.cli._errors import did_you_mean, one_of, unknown
from testbed.errors import UsageError

if TYPE_CHECKING:
    from testbed.episodes.browse import EpisodeEntry, EpisodeFilter

#: The forms of a POLICY spec (``testbed serve POLICY``, a managed policy's ``policy.serve``).
POLICY_FORMS = "scripted:<site>, random, sb3:<model.zip> or module:attribute"
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(?P<port>\d{1,5})$")


def site(value: str) -> str:
    """A packaged site id or an existing bundle folder (returned unchanged)."""
    from envs.sites import list_sites

    if value in list_sites() or Path(value).expanduser().is_dir():
        return value
    raise unknown("site", value, list_sites(), also=", or a bundle folder")


def env_id(value: str) -> str:
    """A registered Testbed env id (``Testbed/ConveyorSort-v0``), returned unchanged."""
    known = testbed_env_ids()
    if value in known:
        return value
    raise unknown("env", value, known)


def camera_obs(value: str, site_id: str) -> dict[str, object]:
    """The env keyword arguments of ``--camera-obs WxH[@STATION][+depth]`` at ``site_id``.

    Raises:
        UsageError: If the text is malformed or the station is not a camera of the site.
    """
    from envs.camera_obs import CameraObs
    from envs.cells.cell import station_camera
    from envs.sites import load_site

    try:
        options = CameraObs.from_text(value)
        if options.station is not None:
            station_camera(load_site(site_id), options.station)
    except ValueError as exc:
        raise UsageError(f"--camera-obs {value!r}: {exc}") from exc
    return {"camera_obs": options.as_kwargs()}


def env_ids(value: str | None) -> list[str]:
    """Comma-separated env ids, each checked; None gives every registered Testbed env id."""
    if value is None:
        return testbed_env_ids()
    chosen = [env_id(v.strip()) for v in value.split(",") if v.strip()]
    if not chosen:
        raise UsageError(f"--env {value!r}: expected env ids such as Testbed/ConveyorSort-v0")
    return chosen


def testbed_env_ids() -> list[str]:
    """Every registered ``Testbed/`` env id, sorted."""
    import gymnasium

    import envs  # noqa: F401  (registers the Testbed env ids)

    return sorted(k for k in gymnasium.registry if k.startswith("Testbed/"))


def host_port(address: str, what: str = "address") -> tuple[str, int]:
    """``(host, port)`` of a ``HOST:PORT`` address (an IPv6 host in brackets: ``[::1]:50051``).

    Raises:
        UsageError: ``address 'localhost': expected HOST:PORT`` (a port is never guessed).
    """
    match = _HOST_PORT.match(address)
    if match is None or int(match["port"]) > 65535:
        raise UsageError(
            f"{what} {address!r}: expected HOST:PORT, e.g. 127.0.0.1:50051 (a port from 0 to 65535)"
        )
    return match["host"], int(match["port"])


def policy_spec(spec: str, where: str = "", env_id: str = "Testbed/ConveyorSort-v0") -> None:
    """Check the cheap forms of a POLICY spec before loading anything.

    ``scripted:<site>`` must name a site the task's controller has gains for, ``sb3:<file>``
    an existing file, anything else be ``random`` or ``module:attribute`` (imported later, by
    `load_policy`).

    Args:
        spec: The spec.
        where: Where it was given, to open the message with (``policy.serve``).
        env_id: The task whose scripted controller ``scripted:`` means.

    Raises:
        UsageError: Naming the spec, with the closest valid one.
    """
    from testbed.cli._scripted import tuned_sites

    label = f"{where}: " if where else ""
    scripted = [f"scripted:{s}" for s in tuned_sites(env_id)]
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        if f"scripted:{rest}" not in scripted:
            what = f"unknown scripted policy {spec!r} for {env_id}"
            raise UsageError(label + one_of(what, spec, scripted or ["none: no controller"]))
    elif kind == "sb3":
        if not Path(rest).expanduser().is_file():
            raise UsageError(f"{label}policy {spec!r}: no such model file {rest!r}")
    elif spec != "random" and not (kind and rest):
        raise UsageError(
            f"{label}policy {spec!r}: expected {POLICY_FORMS}"
            + did_you_mean(spec, ["random", *scripted])
        )


def episode_filter(entries: list[EpisodeEntry], where: EpisodeFilter, campaign_dir: Path) -> None:
    """Check that ``--site`` and ``--policy`` each match an episode of the campaign.

    A filter that matches nothing is a mistake (a typo, or the wrong campaign), not an empty
    answer; combined filters may still select nothing (no failed episode at a site).

    Raises:
        UsageError: Naming the option and value, the values the campaign has, and the closest.
    """
    if not entries:
        return  # an empty campaign: "0 of 0 episodes" says it all
    if where.site is not None:
        sites = sorted({e.meta.site for e in entries})
        if where.site not in sites:
            raise UsageError(one_of(f"--site {where.site!r} matches no episode in {campaign_dir}",
                                    where.site, sites))  # fmt: skip
    if where.policy is not None:
        names = sorted({e.meta.policy for e in entries})
        ids = sorted({e.meta.policy_id for e in entries if e.meta.policy_id})
        if where.policy not in (*names, *ids):
            message = f"--policy {where.policy!r} matches no episode in {campaign_dir}"
            listed = ", ".join(names)
            suggestion = did_you_mean(where.policy, [*names, *ids])
            raise UsageError(f"{message}; expected one of {listed} (or a policy id@version: "
                             f"{', '.join(ids) or 'none'}){suggestion}")  # fmt: skip
