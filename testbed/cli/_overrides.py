"""Hydra overrides checked before Hydra runs, and Hydra's errors in the CLI's one style.

Hydra answers ``campaign.episode=2`` with advice to append ``+campaign.episode=2``, which the
structured config then silently drops; it answers ``site=kr-changwn`` with a dozen lines of
options and search path. Here an unknown key, with or without ``+``, is one line naming the
closest valid key, and an unknown option of a group (site, policy, task, campaign preset,
launcher) is one line listing the options and the closest one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from testbed.cli._errors import closest, did_you_mean, unknown
from testbed.errors import UsageError

#: How a config group is called in messages (others by their own name: site, policy, task).
GROUP_NAMES = {
    "campaign": "campaign preset",
    "hydra/launcher": "launcher",
    "train": "training recipe",
}
#: Extra help for a group's unknown option.
GROUP_HINTS = {"site": "a factory bundle folder runs with site.path=DIR"}


def check_overrides(arguments: list[str], config_dir: Path, config_name: str, command: str) -> None:
    """Refuse unknown config keys and group options in ``arguments`` (``-m`` is skipped).

    Keys are looked up in the config composed with the arguments' group choices; below a
    free-form mapping (``task.env_kwargs``, ``hydra.sweeper.params``) any key goes.

    Args:
        arguments: The overrides as given on the command line.
        config_dir: The primary config's folder.
        config_name: The primary config's name.
        command: The command, for hints (``testbed run``).

    Raises:
        UsageError: Naming the first unknown key or option and the closest valid one.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = parse(arguments)
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = [o for o in overrides if _is_group(loader, o.key_or_group)]
        for override in groups:
            _check_options(loader, override)
        chosen = [o.input_line for o in groups if not o.is_sweep_override()]
        try:
            config = compose(config_name, overrides=chosen, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as exc:
            raise hydra_error(exc) from None
    for override in overrides:
        if override in groups or override.is_delete() or override.package is not None:
            continue
        _check_key(config, override.key_or_group, command)


def parse(arguments: list[str]) -> list[Any]:
    """Hydra's parse of each override; a malformed one is a `UsageError` naming it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for argument in arguments:
        if argument in ("-m", "--multirun"):
            continue
        try:
            parsed.extend(parser.parse_overrides([argument]))
        except OverrideParseException as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "cannot parse it"
            raise UsageError(
                f"override {argument!r}: {reason}",
                "expected KEY=VALUE, GROUP=OPTION or +GROUP=OPTION",
            ) from None
    return parsed


def _is_group(loader: Any, name: str) -> bool:
    return "/" in name or ("." not in name and bool(loader.get_group_options(name)))


def _check_options(loader: Any, override: Any) -> None:
    group = override.key_or_group
    options = loader.get_group_options(group)
    values = (
        override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
    )
    shown = [o for o in options if not o.startswith("base_")]  # schemas, not choices
    for value in values:
        if value is not None and str(value) not in options:
            hints = [GROUP_HINTS[group]] if group in GROUP_HINTS else []
            raise unknown(GROUP_NAMES.get(group, group), str(value), shown, *hints)


def _check_key(config: Any, key: str, command: str) -> None:
    from omegaconf import DictConfig, OmegaConf

    node, parts = config, key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
            return  # a value, a list or an empty node below: the schema or Hydra decides
        if depth and OmegaConf.get_type(node) is dict:
            return  # a free-form mapping: any key goes
        if part not in node.keys():
            break
        node = node._get_node(part)
    else:
        return
    parent, rest = ".".join(parts[:depth]), "".join(f".{p}" for p in parts[depth + 1 :])
    siblings = [str(k) for k in node.keys() if depth or str(k) != "hydra"]
    if depth == 0:  # the first part is wrong: compare whole keys (campain.episodes)
        hydra = key.startswith("hydra")
        suggestion = did_you_mean(key, [k for k in _keys(config) if k.startswith("hydra") == hydra])
    else:  # compare the wrong part with its siblings (campaign.episode, policy.tl.ca)
        close = closest(part, siblings)
        suggestion = f"; did you mean {f'{parent}.{close}{rest}'!r}?" if close else ""
    if not suggestion:
        where = f"a key of {parent}" if parent else "a top-level key"
        suggestion = f"; expected {where}: {', '.join(siblings)}"
    raise UsageError(
        f"unknown config key {key!r}{suggestion}", f"{command} --cfg job lists every key"
    )


def _keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key under ``node`` (values not resolved)."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
        return []
    keys = []
    for key in node.keys():
        path = prefix + str(key)
        keys.append(path)
        keys.extend(_keys(node._get_node(key), f"{path}."))
    return keys


def hydra_error(exc: BaseException) -> UsageError:
    """A Hydra or OmegaConf error as one usage error (no ``+key`` advice, no search path)."""
    from hydra.errors import MissingConfigException

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        shown = [o for o in exc.options if not o.startswith("base_")]
        hints = [GROUP_HINTS[group]] if group in GROUP_HINTS else []
        return unknown(GROUP_NAMES.get(group, group or "config"), name, shown, *hints)
    lines = [line for line in str(exc).splitlines() if line.strip()]
    message = lines[0] if lines else type(exc).__name__
    added = re.match(r"Could not override '(.+)'\. No match in the defaults list", message)
    if added:
        group = added.group(1)
        kind = GROUP_NAMES.get(group, group)
        return UsageError(f"{group}=...: a {kind} is added, not replaced; expected +{group}=OPTION")
    message = re.sub(r"^Error merging override (.+)$", r"override '\1'", message)
    cause = exc.__cause__
    if cause is not None and str(cause):
        message += f": {str(cause).splitlines()[0]}"
    return UsageError(message)
