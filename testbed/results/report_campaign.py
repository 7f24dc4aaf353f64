"""The report's "Campaign" and "Versions" sections: what was swept, what every trial shared.

A campaign's ``campaign.json`` holds the config of the trial that launched it, which is one
point of the sweep, so the report never shows it as "the" config. The sweep axes come from
``campaign.json`` (``sweep``, or the comma-separated overrides); the shared config is every
setting on which the ``trial.json`` configs of all trials agree, and the settings that differ
are listed with their values. Without trial configs, the launching config stands in with the
swept keys left out.
"""

from __future__ import annotations

from importlib import metadata
from itertools import groupby
from typing import Any

from testbed.campaign.trial_status import TrialStatus
from testbed.results.report_blocks import Block

REPORT_PACKAGES = ("physical-ai-testbed", "numpy", "scipy", "pandas", "matplotlib", "pyarrow")

#: Settings worth a line of their own in the report (shown when present).
KEY_SETTINGS = (
    "campaign.episodes",
    "seed",
    "task.env_id",
    "task.max_steps",
    "policy.mode",
    "policy.deadline_ms",
)


def campaign_blocks(campaign: dict[str, Any] | None, trials: list[TrialStatus]) -> list[Block]:
    """The "Campaign" section: name, sweep axes, key settings, trials, shared config."""
    blocks: list[Block] = [("h2", "Campaign")]
    shared, differing, source = shared_config(campaign, trials)
    if campaign is None:
        blocks.append(("p", "campaign.json not found: trials are listed from their folders."))
    else:
        overrides = " ".join(str(o) for o in campaign.get("overrides", [])) or "(none)"
        items = [f"{key}: {campaign.get(key, '?')}" for key in ("name", "started_at", "launcher")]
        items.append(f"overrides: {overrides}")
        axes = sweep_axes(campaign)
        items.append(
            "sweep axes: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in axes.items())
            if axes
            else "sweep axes: none (a single run)"
        )
        blocks.append(("ul", items))
    settings = [_setting(key, shared, differing) for key in KEY_SETTINGS]
    if any(settings):
        blocks.append(("ul", [s for s in settings if s]))
    header = ["trial", "policy", "site", "seeds", "episodes", "status", "config hash"]
    rows = [
        [t.name, *who(t), _seeds((t.info or {}).get("seeds")), f"{t.recorded}/{planned(t)}",
         t.status, str((t.info or {}).get("config_hash", ""))[:12]]
        for t in trials
    ]  # fmt: skip
    blocks.append(("table", header, rows))
    if differing:
        rows = [[key, ", ".join(values)] for key, values in differing.items()]
        blocks += [
            ("h3", "Settings that differ across trials"),
            ("table", ["setting", "values"], rows),
        ]
    if shared:
        text = "\n".join(f"{key}: {value}" for key, value in shared.items())
        blocks.append(("details", f"Shared configuration ({source})", text))
    return blocks


def sweep_axes(campaign: dict[str, Any]) -> dict[str, list[str]]:
    """Swept key -> its values: ``campaign.json``'s ``sweep``, else comma-separated overrides."""
    sweep = campaign.get("sweep")
    if isinstance(sweep, dict) and sweep:
        return {str(k): _split(v) for k, v in sweep.items()}
    axes: dict[str, list[str]] = {}
    for override in campaign.get("overrides") or []:
        key, sep, value = str(override).partition("=")
        if sep and "," in value:
            axes[key.lstrip("+~")] = _split(value)
    return axes


def _split(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def shared_config(
    campaign: dict[str, Any] | None, trials: list[TrialStatus]
) -> tuple[dict[str, str], dict[str, list[str]], str]:
    """(shared settings, differing settings with their values, where they come from).

    Settings are dotted keys (``policy.deadline_ms``) with their values as text.
    """
    configs = [_flatten(c) for t in trials if isinstance(c := (t.info or {}).get("config"), dict)]
    if configs:
        keys = dict.fromkeys(k for config in configs for k in config)
        shared, differing = {}, {}
        for key in keys:
            values = list(dict.fromkeys(config.get(key, "(unset)") for config in configs))
            if len(values) == 1:
                shared[key] = values[0]
            else:
                differing[key] = values
        return shared, differing, f"every one of the {len(configs)} trials' configs"
    launching = _flatten((campaign or {}).get("config") or {})
    swept = sweep_axes(campaign or {})
    kept = {k: v for k, v in launching.items() if not any(_under(k, axis) for axis in swept)}
    differing = {axis: values for axis, values in swept.items()}
    return kept, differing, "campaign.json's config, swept keys left out"


def _under(key: str, axis: str) -> bool:
    return key == axis or key.startswith(axis + ".")


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = "null" if value is None else str(value)
    return flat


def _setting(key: str, shared: dict[str, str], differing: dict[str, list[str]]) -> str:
    if key in shared and shared[key] != "null":
        return f"{key}: {shared[key]}"
    if key in differing:
        return f"{key}: differs across trials ({', '.join(differing[key])})"
    return ""


def who(trial: TrialStatus) -> list[str]:
    """[policy name, site] of a trial, from its ``trial.json``."""
    info = trial.info or {}
    policy = info.get("policy") or {}
    name = policy.get("name", "") if isinstance(policy, dict) else str(policy)
    return [str(name), str(info.get("site", ""))]


def planned(trial: TrialStatus) -> str:
    """The episodes a trial planned, as text (``?`` when unknown)."""
    info = trial.info or {}
    return str(info.get("episodes") or len(info.get("seeds") or []) or "?")


def _seeds(seeds: Any) -> str:
    """Compact seed list: ``0-9, 12``."""
    if not seeds:
        return "?"
    values = sorted({int(s) for s in seeds})
    runs = [[v for _, v in run] for _, run in groupby(enumerate(values), lambda iv: iv[1] - iv[0])]
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def versions_blocks(trials: list[TrialStatus]) -> list[Block]:
    """The "Versions" section: packages of every trial (flagged when they differ), and ours."""
    seen: dict[str, set[str]] = {}
    for trial in trials:
        for package, version in ((trial.info or {}).get("versions") or {}).items():
            seen.setdefault(str(package), set()).add(str(version))
    rows = [
        [p, ", ".join(sorted(v)), "differs across trials" if len(v) > 1 else ""]
        for p, v in sorted(seen.items())
    ]
    blocks: list[Block] = [("h2", "Versions")]
    if rows:
        blocks.append(("table", ["package", "version (from trial.json)", "note"], rows))
    else:
        blocks.append(("p", "No trial.json recorded package versions."))
    here = [f"{p} {_installed(p)}" for p in REPORT_PACKAGES]
    return [*blocks, ("p", "Report generated with: " + ", ".join(here) + ".")]


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
