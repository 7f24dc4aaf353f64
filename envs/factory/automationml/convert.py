"""Build a factory bundle from a CAEX file, and write a bundle back as one.

``import_aml``: parse (hardened), validate against the CAEX schema, map the instance hierarchy
(`reader`), add what CAEX cannot carry from side files (the production log, and a settings
YAML with the robot's gripper and controller, physics, safety profile, takt time and tasks),
then check the result with the bundle loader and the layout's feasibility, exactly as a CSV
bundle is checked. Nothing is written unless it passes.

``export_aml``: the inverse; writes ``FILE.aml`` and, beside it, the side files
``FILE.settings.yaml`` and ``FILE.arrivals.csv`` that ``import_aml`` picks up by default, so
import, export and import give the same bundle.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from envs.errors import DataIssue, FactoryDataError
from envs.factory._yaml import YamlProblem, check_bounds, compose_and_load
from envs.factory.automationml import mapping as m
from envs.factory.automationml._schema import schema_issues
from envs.factory.automationml._xml import CaexError, parse_caex, read_bytes
from envs.factory.automationml.reader import CaexSite, read_site
from envs.factory.automationml.writer import write_caex
from envs.factory.limits import MIB, max_bytes
from envs.factory.loader import BundleCheck, check_bundle, check_snapshot, snapshot

SETTINGS_SUFFIX = ".settings.yaml"
ARRIVALS_SUFFIX = ".arrivals.csv"
MAX_SETTINGS_BYTES = 1 * MIB


@dataclass(frozen=True)
class ImportResult:
    """A bundle built from a CAEX file.

    Attributes:
        check: The bundle's check (its spec, warnings and pick window), as for a CSV bundle.
        skipped: Elements left out for their unknown role (with ``skip_unknown``).
        files: The bundle's files by relative name (written to the output folder).
    """

    check: BundleCheck
    skipped: tuple[DataIssue, ...]
    files: Mapping[str, bytes]


def side_file(aml: Path, suffix: str) -> Path:
    """``plant.aml`` -> ``plant.settings.yaml`` / ``plant.arrivals.csv`` beside it."""
    return aml.with_name(aml.stem + suffix)


def import_aml(
    aml: str | Path,
    out_dir: str | Path | None,
    *,
    settings: str | Path | None = None,
    arrivals: str | Path | None = None,
    jurisdiction: str | None = None,
    hierarchy: str | None = None,
    skip_unknown: bool = False,
) -> ImportResult:
    """Build and check the factory bundle a CAEX file describes; write it to ``out_dir``.

    Args:
        aml: The CAEX (.aml) file.
        out_dir: A new or empty folder for the bundle (None: check only, write nothing).
        settings: site.yaml keys CAEX does not carry (default: ``<aml stem>.settings.yaml``
            beside the file, if present). Keys both give must agree.
        arrivals: The production log (default: ``<aml stem>.arrivals.csv`` beside the file).
        jurisdiction: ``safety.jurisdiction`` (KR, JP, US or EU), if not in the settings.
        hierarchy: The InstanceHierarchy to import, by Name (needed if there are several).
        skip_unknown: Leave out elements whose role is unknown instead of refusing the file.

    Raises:
        FactoryDataError: With every issue: of the XML, the schema, the mapping, the side
            files, or of the bundle (the loader's and the layout checks' own messages, each
            with the element it came from).
    """
    path = Path(aml)
    if out_dir is not None:
        _writable(Path(out_dir).expanduser().resolve())
    try:
        document = parse_caex(read_bytes(path, path.name), path.name)
        problems = schema_issues(document)
        if problems:
            raise CaexError(problems)
        site = read_site(document, hierarchy, skip_unknown)
    except CaexError as error:
        raise FactoryDataError(str(path), error.issues) from None
    issues: list[DataIssue] = []
    settings_path = Path(settings) if settings else side_file(path, SETTINGS_SUFFIX)
    given = _settings(settings_path, issues) if settings or settings_path.is_file() else {}
    if jurisdiction:
        given = _with_jurisdiction(given, jurisdiction, settings_path.name, issues)
    site_yaml = _merge(site, given, settings_path.name, path.name, issues)
    log_path = Path(arrivals) if arrivals else side_file(path, ARRIVALS_SUFFIX)
    files = {
        "site.yaml": _dump_yaml(site_yaml),
        "stations.csv": _csv(m.STATION_COLUMNS, site.stations),
        "parts.csv": _csv(m.PART_COLUMNS, site.parts),
    }
    log = _read_limited(
        log_path,
        max_bytes("arrivals.csv"),
        issues,
        "arrivals.csv",
        f"a production log (CAEX carries none): give --arrivals FILE or put "
        f"{log_path.name} beside {path.name}",
    )
    if log is not None:
        files["arrivals.csv"] = log
    files.update(_assets(path, site, issues))
    if issues:
        raise FactoryDataError(str(path), issues)
    root = Path(out_dir).expanduser().resolve() if out_dir else path.parent.resolve()
    check = check_snapshot(root, files)
    if check.errors:
        raise FactoryDataError(
            str(path), [_traced(i, site.origins, path.name) for i in check.errors]
        )
    if out_dir is not None:
        _write(root, files)
    return ImportResult(check, tuple(site.skipped), files)


def _settings(path: Path, issues: list[DataIssue]) -> dict[str, Any]:
    data = _read_limited(path, MAX_SETTINGS_BYTES, issues, path.name, "a readable settings file")
    if data is None:
        return {}
    try:
        text = data.decode("utf-8-sig")
        check_bounds(text)
        _, value = compose_and_load(text)
    except UnicodeDecodeError as error:
        issues.append(DataIssue(path.name, f"byte {error.start}", "", "UTF-8 text"))
        return {}
    except YamlProblem as problem:
        issues.append(DataIssue(path.name, problem.where, "", problem.expected))
        return {}
    if value is None:
        return {}
    if not isinstance(value, dict):
        issues.append(
            DataIssue(path.name, "top level", type(value).__name__, "a mapping of site.yaml keys")
        )
        return {}
    return value


def _read_limited(
    path: Path, limit: int, issues: list[DataIssue], name: str, expected: str
) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        issues.append(DataIssue(name, "", f"{path}: {error.strerror or error}", expected))
        return None
    if len(data) > limit:
        issues.append(
            DataIssue(
                name, "", f"more than {limit // MIB} MiB", f"a file of at most {limit // MIB} MiB"
            )
        )
        return None
    return data


def _with_jurisdiction(
    given: dict[str, Any], code: str, name: str, issues: list[DataIssue]
) -> dict[str, Any]:
    safety = given.get("safety")
    safety = dict(safety) if isinstance(safety, dict) else {}
    if safety.get("jurisdiction") not in (None, code):
        issues.append(
            DataIssue(
                name,
                "safety.jurisdiction",
                repr(safety["jurisdiction"]),
                f"{code!r} as --jurisdiction says (or leave the key out)",
            )
        )
    safety["jurisdiction"] = code
    return {**given, "safety": safety}


def _merge(
    site: CaexSite, given: dict[str, Any], settings: str, aml: str, issues: list[DataIssue]
) -> dict[str, Any]:
    """site.yaml: the keys the CAEX file carries, and the settings' (agreeing keys are fine)."""
    given = dict(given)
    robot = given.get("robot")
    robot = dict(robot) if isinstance(robot, dict) else robot
    carried = {
        ("site_id",): site.site_id,
        ("name",): site.name,
        ("robot", "model"): site.robot_model,
        ("robot", "station_id"): site.robot_station,
    }
    top: dict[str, Any] = {}
    robot_keys: dict[str, Any] = {}
    for key, ours in carried.items():
        source = robot if key[0] == "robot" else given
        theirs = source.pop(key[-1], None) if isinstance(source, dict) else None
        if ours is not None and theirs is not None and theirs != ours:
            issues.append(
                DataIssue(
                    settings,
                    ".".join(key),
                    repr(theirs),
                    f"{ours!r} as {aml} says (or leave the key out)",
                )
            )
        value = ours if ours is not None else theirs
        if value is not None:
            (robot_keys if key[0] == "robot" else top)[key[-1]] = value
    if isinstance(robot, dict) or robot is None:
        robot = {**robot_keys, **(robot or {})} or None
    if "provenance" not in given:
        top["provenance"] = {
            "source": "imported",
            "generator": "testbed sites import-aml",
            "notes": f"layout and parts from {aml}",
        }
    if "robot" not in given and robot is not None:
        top["robot"] = robot
    for name, value in given.items():
        top[name] = robot if name == "robot" else value
    return top


def _dump_yaml(data: Mapping[str, Any]) -> bytes:
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=100).encode()


def _csv(columns: list[str], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _assets(aml: Path, site: CaexSite, issues: list[DataIssue]) -> dict[str, bytes]:
    """Mesh files the parts name (``assets/...``), read from beside the CAEX file."""
    found: dict[str, bytes] = {}
    base = aml.parent.resolve()
    for row in site.parts:
        uri = row.get("mesh_uri") or ""
        source = (base / uri).resolve()
        if not uri.startswith("assets/") or not source.is_relative_to(base) or not source.is_file():
            continue  # the loader reports a bad or missing mesh_uri at its parts.csv row
        data = _read_limited(source, max_bytes(uri), issues, uri, "a mesh file")
        if data is not None:
            found[uri] = data
    return found


def _traced(issue: DataIssue, origins: Mapping[tuple[str, int], str], aml: str) -> DataIssue:
    """The loader's issue, with the CAEX element its row came from."""
    location = issue.location
    if location.startswith("row "):
        number = location[4:].split(" ", 1)[0].rstrip(",")
        origin = origins.get((issue.file, int(number))) if number.isdigit() else None
        if origin:
            location += f" [{aml}: {origin}]"
    return DataIssue(issue.file, location, issue.value, issue.expected)


def _writable(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        issue = DataIssue(
            str(root),
            "",
            "an existing file or a non-empty folder",
            "a new or empty folder for the bundle",
        )
        raise FactoryDataError(str(root), [issue])


def _write(root: Path, files: Mapping[str, bytes]) -> None:
    _writable(root)
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def export_aml(
    bundle: str | Path,
    aml: str | Path,
    *,
    version: str = "3.0",
    written_at: str | None = None,
    side_files: bool = True,
) -> list[Path]:
    """Write a valid bundle as a CAEX file (and the side files CAEX cannot carry).

    Args:
        bundle: The bundle folder (checked first, as ``testbed sites check`` does).
        aml: The CAEX file to write.
        version: ``"3.0"`` or ``"2.15"``.
        written_at: ``LastWritingDateTime`` (default: now, UTC).
        side_files: Also write ``<stem>.settings.yaml`` and ``<stem>.arrivals.csv`` (and the
            parts' meshes under ``assets/``) beside the file.

    Returns:
        The files written.

    Raises:
        FactoryDataError: If the bundle is not valid.
        ValueError: If ``version`` is unknown or the layout cannot be written (see `write_caex`).
    """
    if version not in ("3.0", "2.15"):
        raise ValueError(f"CAEX version {version!r}; expected '3.0' or '2.15'")
    check = check_bundle(bundle)
    spec = check.raise_errors()
    files = snapshot(spec.root)
    site: dict[str, Any] = compose_and_load(files["site.yaml"].decode("utf-8-sig"))[1]
    path = Path(aml)
    stamp = written_at or datetime.now(UTC).replace(microsecond=0).isoformat()
    document = write_caex(
        site_id=spec.site_id,
        name=spec.site.name,
        robot_model=spec.site.robot.model,
        robot_station=spec.site.robot.station_id,
        stations=_rows(files["stations.csv"]),
        parts=_rows(files["parts.csv"]),
        file_name=path.name,
        written_at=stamp,
        version=version,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(document)
    written = [path]
    if side_files:
        rest = {k: v for k, v in site.items() if k not in ("site_id", "name")}
        robot = {
            k: v for k, v in (rest.get("robot") or {}).items() if k not in ("model", "station_id")
        }
        if robot:
            rest["robot"] = robot
        else:
            rest.pop("robot", None)
        for target, data in (
            (side_file(path, SETTINGS_SUFFIX), _dump_yaml(rest)),
            (side_file(path, ARRIVALS_SUFFIX), files["arrivals.csv"]),
        ):
            target.write_bytes(data)
            written.append(target)
        for part in spec.parts:
            if part.mesh_uri:
                target = path.parent / part.mesh_uri
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(files[part.mesh_uri])
                written.append(target)
    return written


def _rows(data: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    return [
        {k.strip(): (v or "").strip() for k, v in row.items() if k}
        for row in reader
        if any((v or "").strip() for v in row.values())
    ]
