"""Load a factory bundle folder into a validated `SiteSpec`, reporting every problem at once.

Usage::

    spec = load_bundle("envs/site_data/kr-changwon")

Each file is parsed on its own (`envs.factory._parse`), then the cross-file rules run
(`envs.factory.checks`), then, once the files are valid, the layout's feasibility for the task
(`envs.factory.feasibility`). If anything is wrong, one `FactoryDataError` lists every issue
with the file, the row or key, the value and what was expected. `check_bundle` returns the
errors and the layout's warnings instead of raising (``testbed sites check``). Files are size
limited (`envs.factory.limits`). The format is documented in ``docs/factory_bundle.md``.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from envs.errors import DataIssue, FactoryDataError
from envs.factory._parse import M, Table, decode, parse_csv, parse_site_yaml
from envs.factory.arrivals import derive_arrival_process
from envs.factory.checks import Bundle, run_checks
from envs.factory.feasibility import check_layout
from envs.factory.limits import MAX_ROWS, IssueList, max_bytes, size_issue
from envs.factory.schema import Arrival, Part, SiteSpec, Station
from envs.safety.safeguards import safeguard_findings

BUNDLE_FILES = ("site.yaml", "stations.csv", "parts.csv", "arrivals.csv")
"""The files every bundle must have, in the order they are checked."""
BUNDLE_LAYOUT = "a bundle folder with " + ", ".join(BUNDLE_FILES) + " (and optionally assets/)"


@dataclass(frozen=True)
class BundleCheck:
    """Everything a bundle check found.

    Attributes:
        root: The bundle folder.
        spec: The site, if there are no errors.
        errors: The issues that make the bundle unusable (at most `limits.LISTED_PER_FILE`
            per file, then one that counts the rest).
        warnings: Marginal points of the layout and compliance findings (a co-worker's
            walkway the jurisdiction wants guarded: `envs.safety.safeguards`); only
            checked once the files are valid.
        total_errors: Every error found, listed or not.
        window: The pick window on the belt, from and to (m along it from its centre), once
            the layout was checked and the belt is in reach.
    """

    root: Path
    spec: SiteSpec | None
    errors: tuple[DataIssue, ...]
    warnings: tuple[DataIssue, ...]
    total_errors: int
    window: tuple[float, float] | None = None

    def raise_errors(self) -> SiteSpec:
        """The site, or a `FactoryDataError` with the errors."""
        if self.errors or self.spec is None:
            raise FactoryDataError(str(self.root), self.errors)
        return self.spec


def check_bundle(path: str | Path) -> BundleCheck:
    """Read and check the factory bundle in folder ``path``, without raising on bad data.

    Args:
        path: The bundle folder.

    Returns:
        The site (if valid), its errors and its warnings.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        got = "a file" if root.exists() else "no such folder"
        issue = DataIssue(str(path), "", got, BUNDLE_LAYOUT)
        return BundleCheck(Path(str(path)), None, (issue,), (), 1)
    return check_snapshot(root, snapshot(root))


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
    return check_bundle(path).raise_errors()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by bundle-relative POSIX name (hidden files skipped).

    A file is read up to one byte past its size limit (`limits.max_bytes`): enough to know it
    is too large, without reading a multi-gigabyte log into memory.

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
                relative = path.relative_to(root).as_posix()
                with path.open("rb") as handle:
                    files[relative] = handle.read(max_bytes(relative) + 1)
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
    return check_snapshot(root, files).raise_errors()


def check_snapshot(root: Path, files: Mapping[str, bytes]) -> BundleCheck:
    """Check an already-read bundle: its files, the rules across them, then its layout.

    Args:
        root: The bundle folder the files were read from (absolute).
        files: The bundle's files by relative name.

    Returns:
        The site (if valid), its errors and its warnings.
    """
    issues = IssueList()
    texts = {name: _text(name, files, issues) for name in BUNDLE_FILES}
    for name in sorted(set(files) - set(BUNDLE_FILES)):  # assets
        oversize = size_issue(name, len(files[name]))
        issues.extend([oversize] if oversize else [])
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
        return BundleCheck(root, None, _in_file_order(issues), (), issues.total)
    arrivals = bundle.arrivals.models()
    spec = SiteSpec(
        root=root,
        bundle_hash=hash_files(files),
        site=site,
        stations=stations.models(),
        parts=parts.models(),
        arrivals=arrivals,
        arrival_process=derive_arrival_process(arrivals),
    )
    findings = check_layout(spec, {r.model.station_id: r.where for r in stations.rows})
    layout_errors = IssueList(findings.errors)
    errors = _in_file_order(layout_errors)
    return BundleCheck(
        root,
        None if errors else spec,
        errors,
        findings.warnings + tuple(safeguard_findings(spec)),
        layout_errors.total,
        findings.window,
    )


def _in_file_order(issues: IssueList) -> tuple[DataIssue, ...]:
    order = {name: index for index, name in enumerate(BUNDLE_FILES)}
    listed = [*issues, *issues.summaries()]
    listed.sort(key=lambda issue: order.get(issue.file, len(order)))  # stable: by file
    return tuple(listed)


def _text(name: str, files: Mapping[str, bytes], issues: list[DataIssue]) -> str | None:
    data = files.get(name)
    if data is None:
        top_level = [f for f in files if "/" not in f]
        close = difflib.get_close_matches(name.lower(), [f.lower() for f in top_level], n=1)
        found = next((f for f in top_level if close and f.lower() == close[0]), None)
        got = f"missing (found {found!r})" if found else "missing"
        issues.append(DataIssue(name, "", got, f"this file in the bundle ({BUNDLE_LAYOUT})"))
        return None
    oversize = size_issue(name, len(data))
    if oversize:
        issues.append(oversize)
        return None
    return decode(name, data, issues)


def _table(
    name: str, texts: Mapping[str, str | None], model: type[M], issues: list[DataIssue]
) -> Table[M] | None:
    text = texts[name]
    if not text:
        return None
    rows = _row_count(text, MAX_ROWS[name])
    if rows > MAX_ROWS[name]:
        expected = f"at most {MAX_ROWS[name]:,} data rows"
        if name == "arrivals.csv":
            expected += ": keep a representative stretch of the log (gaps and part shares)"
        issues.append(DataIssue(name, "", f"{rows:,} data rows", expected))
        return None
    return parse_csv(name, text, model, issues)


def _row_count(text: str, limit: int) -> int:
    """Data rows of a CSV text (0 if it cannot exceed ``limit``: a row takes a line or more)."""
    if text.count("\n") <= limit:
        return 0
    try:
        records = csv.reader(io.StringIO(text, newline=""))
        return sum(1 for cells in records if any(cell.strip() for cell in cells)) - 1
    except csv.Error:  # parse_csv names the line
        return 0
