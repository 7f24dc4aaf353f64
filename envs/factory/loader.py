"""Load a factory bundle folder into a validated `SiteSpec`, reporting every problem at once.

Usage::

    spec = load_bundle("envs/site_data/kr-changwon")

Each file is parsed on its own (`envs.factory._parse`), then the cross-file rules run
(`envs.factory.checks`). If anything is wrong, one `FactoryDataError` lists every issue with
the file, the row or key, the value and what was expected. The format is documented in
``docs/factory_bundle.md``.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from envs.errors import DataIssue, FactoryDataError
from envs.factory._parse import M, Table, decode, parse_csv, parse_site_yaml
from envs.factory.arrivals import derive_arrival_process
from envs.factory.checks import Bundle, run_checks
from envs.factory.schema import Arrival, Part, SiteSpec, Station

BUNDLE_FILES = ("site.yaml", "stations.csv", "parts.csv", "arrivals.csv")
"""The files every bundle must have, in the order they are checked."""
BUNDLE_LAYOUT = "a bundle folder with " + ", ".join(BUNDLE_FILES) + " (and optionally assets/)"


def load_bundle(path: str | Path) -> SiteSpec:
    """Read, validate and return the factory bundle in folder ``path``.

    Args:
        path: The bundle folder.

    Returns:
        The validated, frozen site specification.

    Raises:
        FactoryDataError: With every issue found, if the folder is missing or any file or
            cross-file rule is violated.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        got = "a file" if root.exists() else "no such folder"
        raise FactoryDataError(str(path), [DataIssue(str(path), "", got, BUNDLE_LAYOUT)])
    return load_snapshot(root, snapshot(root))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by bundle-relative POSIX name (hidden files skipped).

    Args:
        root: The bundle folder.

    Returns:
        File bytes keyed by relative name, e.g. ``assets/gear.obj``.
    """
    files: dict[str, bytes] = {}
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not _skipped(d))
        for name in sorted(names):
            path = Path(folder, name)
            if not _skipped(name) and path.is_file():
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def hash_files(files: Mapping[str, bytes]) -> str:
    """sha256 (hex) over the sorted relative names and bytes of a bundle's files.

    Args:
        files: A `snapshot` of the bundle.

    Returns:
        The hex digest; equal digests mean byte-identical bundles.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        # Length-prefixed so that moving bytes between a name and a body changes the hash.
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def load_snapshot(root: Path, files: Mapping[str, bytes]) -> SiteSpec:
    """Validate an already-read bundle (see `snapshot`) and build its `SiteSpec`.

    Args:
        root: The bundle folder the files were read from (absolute).
        files: The bundle's files by relative name.

    Returns:
        The validated site specification.

    Raises:
        FactoryDataError: With every issue found.
    """
    issues: list[DataIssue] = []
    texts = {name: _text(name, files, issues) for name in BUNDLE_FILES}
    site_text = texts["site.yaml"]
    bundle = Bundle(
        root=root,
        files=frozenset(files),
        site=parse_site_yaml(site_text, issues) if site_text else None,
        stations=_table("stations.csv", texts, Station, issues),
        parts=_table("parts.csv", texts, Part, issues),
        arrivals=_table("arrivals.csv", texts, Arrival, issues),
    )
    run_checks(bundle, issues)
    site, stations, parts = bundle.site, bundle.stations, bundle.parts
    if issues or not (site and stations and parts and bundle.arrivals):
        order = {name: index for index, name in enumerate(BUNDLE_FILES)}
        issues.sort(key=lambda issue: order.get(issue.file, len(order)))  # stable: by file
        raise FactoryDataError(str(root), issues)
    arrivals = bundle.arrivals.models()
    return SiteSpec(
        root=root,
        bundle_hash=hash_files(files),
        site=site,
        stations=stations.models(),
        parts=parts.models(),
        arrivals=arrivals,
        arrival_process=derive_arrival_process(arrivals),
    )


def _text(name: str, files: Mapping[str, bytes], issues: list[DataIssue]) -> str | None:
    data = files.get(name)
    if data is None:
        top_level = [f for f in files if "/" not in f]
        close = difflib.get_close_matches(name.lower(), [f.lower() for f in top_level], n=1)
        found = next((f for f in top_level if close and f.lower() == close[0]), None)
        got = f"missing (found {found!r})" if found else "missing"
        issues.append(DataIssue(name, "", got, f"this file in the bundle ({BUNDLE_LAYOUT})"))
        return None
    return decode(name, data, issues)


def _table(
    name: str, texts: Mapping[str, str | None], model: type[M], issues: list[DataIssue]
) -> Table[M] | None:
    text = texts[name]
    return parse_csv(name, text, model, issues) if text else None
