"""The packaged sites (``envs/site_data/<site_id>/``) and loading a site by id or folder.

Usage::

    list_sites()                   # ['jp-nagoya', 'kr-changwon', 'us-austin']
    spec = load_site("jp-nagoya")  # or load_site("path/to/my_bundle")
"""

from __future__ import annotations

import threading
from pathlib import Path

from envs.errors import UnknownSiteError
from envs.factory.loader import hash_files, load_snapshot, snapshot
from envs.factory.schema import SiteSpec

SITE_DATA = Path(__file__).parent / "site_data"
"""Folder holding one bundle folder per packaged site."""

_CACHE: dict[Path, tuple[str, SiteSpec]] = {}
_CACHE_LOCK = threading.Lock()


def list_sites() -> list[str]:
    """Ids of the packaged sites, sorted.

    Returns:
        Every folder name under `SITE_DATA` that holds a ``site.yaml``.
    """
    if not SITE_DATA.is_dir():
        return []
    return sorted(p.name for p in SITE_DATA.iterdir() if (p / "site.yaml").is_file())


def resolve_site(name_or_path: str | Path) -> Path:
    """Return the bundle folder of a packaged site id or of an existing bundle folder.

    A string that names a packaged site wins over a folder of the same name in the current
    directory; pass a `Path` (or ``./name``) to mean the folder.

    Args:
        name_or_path: A site id such as ``kr-changwon``, or a bundle folder.

    Returns:
        The absolute bundle folder.

    Raises:
        UnknownSiteError: If it is neither, with the known site ids in the message.
    """
    if isinstance(name_or_path, str) and name_or_path in list_sites():
        return (SITE_DATA / name_or_path).resolve()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    known = ", ".join(list_sites()) or "none"
    raise UnknownSiteError(
        f"unknown site {str(name_or_path)!r}: not a packaged site ({known}) "
        "and not an existing bundle folder"
    )


def load_site(name_or_path: str | Path) -> SiteSpec:
    """Load and validate a site, reusing the last result while its files are unchanged.

    The cache is keyed on the folder and the hash of its bytes (they are read anyway), so an
    edited bundle is always re-validated and never served stale.

    Args:
        name_or_path: A packaged site id or a bundle folder (see `resolve_site`).

    Returns:
        The validated site specification.

    Raises:
        UnknownSiteError: If the site cannot be found.
        FactoryDataError: If the bundle is invalid.
    """
    root = resolve_site(name_or_path)
    files = snapshot(root)
    digest = hash_files(files)
    with _CACHE_LOCK:
        cached = _CACHE.get(root)
    if cached is not None and cached[0] == digest:
        return cached[1]
    spec = load_snapshot(root, files)
    with _CACHE_LOCK:
        _CACHE[root] = (digest, spec)
    return spec
