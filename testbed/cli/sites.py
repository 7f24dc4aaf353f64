"""``testbed sites``: list the packaged factory sites and validate a factory bundle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from testbed.cli import app
from testbed.cli._errors import print_error

if TYPE_CHECKING:  # the commands import envs themselves: `testbed --help` and serve stay fast
    from envs.factory.schema import SiteSpec

sites_app = typer.Typer(
    help="Factory sites: list the packaged sites, validate a factory bundle "
    "(format: docs/factory_bundle.md).",
    no_args_is_help=True,
)
app.add_typer(sites_app, name="sites")


def _console() -> Console:
    # Built per call so output goes to the stdout that is current (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


@sites_app.command("list")
def list_command() -> None:
    """List the packaged sites with their robot, conveyor, parts and control rate."""
    from envs.errors import EnvsError
    from envs.sites import list_sites, load_site

    table = Table(title="Packaged sites", box=None, pad_edge=False, header_style="bold underline")
    for column in ("site", "robot", "gripper", "belt m/s", "parts", "bins", "ctrl Hz", "source"):
        table.add_column(column, no_wrap=True)
    failed = []
    for site_id in list_sites():
        try:
            spec = load_site(site_id)
        except EnvsError as error:
            failed.append(site_id)
            first_line = str(error).splitlines()[0]
            table.add_row(site_id, f"[red]invalid: {first_line}[/red]", *[""] * 6)
            continue
        table.add_row(*_summary_row(spec))
    console = _console()
    console.print(table)
    if failed:
        print_error(
            f"invalid packaged sites: {', '.join(failed)}", [f"testbed sites check {failed[0]}"]
        )
        raise typer.Exit(code=1)


def _summary_row(spec: SiteSpec) -> list[str]:
    site = spec.site
    return [
        spec.site_id,
        site.robot.model,
        site.robot.gripper.kind,
        f"{spec.conveyor.conveyor_speed_mps or 0.0:g}",
        str(len(spec.parts)),
        str(len(spec.bins)),
        f"{site.control_rate_hz:g}",
        site.provenance.source,
    ]


@sites_app.command("check")
def check_command(
    path: Annotated[str, typer.Argument(help="Bundle folder to validate (or a packaged site id).")],
) -> None:
    """Validate a factory bundle and its layout: print a summary, or every issue (exit code 1).

    Warnings (a marginal layout) are printed too; only errors make the exit code 1.
    """
    from envs.factory.loader import check_bundle
    from envs.sites import list_sites, resolve_site
    from testbed.cli._checks import site

    console = _console()
    site(path)  # an unknown id or a missing folder is a usage error, with did-you-mean
    try:
        check = check_bundle(resolve_site(path) if path in list_sites() else Path(path))
    except OSError as error:
        print_error(f"bundle {path!r}: cannot read it ({error})")
        raise typer.Exit(code=1) from None
    if check.spec is None:
        issues = "\n".join(f"  - {issue}" for issue in check.errors)
        print_error(f"bundle {check.root}: {check.total_errors} issue(s)\n{issues}")
    else:
        _print_summary(console, check.spec, check.window)
    if check.warnings:
        warnings = [f"warning: {issue}" for issue in check.warnings]
        print("\n".join(warnings), file=sys.stderr, flush=True)
    if check.spec is None:
        raise typer.Exit(code=1)


def _print_summary(
    console: Console, spec: SiteSpec, window: tuple[float, float] | None = None
) -> None:
    from envs.factory.arrivals import arrive_events

    site = spec.site
    process = spec.arrival_process
    shares = ", ".join(f"{part_id} {share:.0%}" for part_id, share in process.part_shares.items())
    arrive = len(arrive_events(spec.arrivals))
    lines = [
        f"OK {spec.root}",
        f"  site:          {spec.site_id} ({site.name}; {site.provenance.source} data)",
        f"  robot:         {site.robot.model}, {site.robot.gripper.kind} gripper "
        f"({site.robot.gripper.max_force_n:g} N), "
        f"{site.control_rate_hz:g} Hz control ({site.substeps} physics steps each)",
        f"  stations:      {len(spec.stations)} ({len(spec.bins)} bins, conveyor "
        f"{spec.conveyor.station_id} at {spec.conveyor.conveyor_speed_mps or 0.0:g} m/s)",
        f"  parts:         {len(spec.parts)}",
        f"  arrivals:      {len(spec.arrivals)} log rows, {arrive} of them 'arrive' events",
        f"  inter-arrival: mean {process.mean_inter_arrival_s:.2f} s "
        f"(min {min(process.inter_arrival_s):.2f}, max {max(process.inter_arrival_s):.2f})",
        f"  part shares:   {shares}",
        f"  bundle hash:   sha256:{spec.bundle_hash}",
    ]
    if window is not None:
        start, end = window
        speed = spec.conveyor.conveyor_speed_mps or 0.0
        time = f"; {(end - start) / speed:.1f} s at {speed:g} m/s" if speed else ""
        lines.insert(
            4,
            f"  pick window:   {spec.conveyor.station_id} from {start:.2f} to {end:.2f} m along "
            f"the belt ({end - start:.2f} m{time})",
        )
    for line in lines:
        console.print(line, markup=False)


@sites_app.command("import-aml")
def import_aml_command(
    aml: Annotated[Path, typer.Argument(help="The CAEX 3.0 or 2.15 file (.aml) to import.")],
    out_dir: Annotated[Path, typer.Argument(help="A new or empty folder for the bundle.")],
    settings: Annotated[
        Path | None,
        typer.Option(
            help="site.yaml keys CAEX does not carry (default: <aml>.settings.yaml "
            "beside the file, if present)."
        ),
    ] = None,
    arrivals: Annotated[
        Path | None,
        typer.Option(help="The production log (default: <aml>.arrivals.csv beside the file)."),
    ] = None,
    jurisdiction: Annotated[
        str | None, typer.Option(help="safety.jurisdiction: KR, JP, US or EU.")
    ] = None,
    hierarchy: Annotated[
        str | None, typer.Option(help="The InstanceHierarchy to import (if there are several).")
    ] = None,
    skip_unknown: Annotated[
        bool, typer.Option(help="Leave out elements with an unknown role class (listed).")
    ] = False,
) -> None:
    """Build a factory bundle from an AutomationML (CAEX) file (docs/automationml.md).

    The bundle is checked like any other (files, then layout) and written only if it passes.
    """
    from envs.errors import FactoryDataError
    from envs.factory.automationml import import_aml
    from envs.factory.automationml.convert import SETTINGS_SUFFIX, side_file

    for what, value in (("CAEX file", aml), ("--settings", settings), ("--arrivals", arrivals)):
        if value is not None and not value.is_file():
            raise _usage(f"{what} {str(value)!r}: no such file")
    if jurisdiction is not None and jurisdiction not in ("KR", "JP", "US", "EU"):
        raise _usage(f"--jurisdiction {jurisdiction!r}; expected KR, JP, US or EU")
    try:
        result = import_aml(aml, out_dir, settings=settings, arrivals=arrivals,
                            jurisdiction=jurisdiction, hierarchy=hierarchy,
                            skip_unknown=skip_unknown)  # fmt: skip
    except FactoryDataError as error:
        hints = []
        no_settings = settings is None and not side_file(aml, SETTINGS_SUFFIX).is_file()
        if no_settings and any(issue.file == "site.yaml" for issue in error.issues):
            hints.append(
                "CAEX carries the layout, parts and robot model only: give the other "
                "site.yaml keys with --settings FILE (docs/automationml.md)"
            )
        print_error(str(error), hints)
        raise typer.Exit(code=2) from None
    skipped = [f"warning: skipped {issue}" for issue in result.skipped]
    warnings = [f"warning: {issue}" for issue in result.check.warnings]
    spec = result.check.raise_errors()
    _print_summary(_console(), spec, result.check.window)
    if skipped or warnings:
        print("\n".join(skipped + warnings), file=sys.stderr, flush=True)


@sites_app.command("export-aml")
def export_aml_command(
    bundle: Annotated[str, typer.Argument(help="Bundle folder (or a packaged site id).")],
    aml: Annotated[Path, typer.Argument(help="The CAEX file to write (.aml).")],
    caex_version: Annotated[
        str, typer.Option("--caex-version", help="CAEX schema version: 3.0 or 2.15.")
    ] = "3.0",
    side_files: Annotated[
        bool, typer.Option(help="Also write <aml>.settings.yaml and <aml>.arrivals.csv.")
    ] = True,
) -> None:
    """Write a factory bundle as an AutomationML (CAEX) file (docs/automationml.md).

    The side files CAEX cannot carry (its settings and production log) go beside it.
    """
    from envs.factory.automationml import export_aml
    from envs.sites import list_sites, resolve_site
    from testbed.cli._checks import site

    if caex_version not in ("3.0", "2.15"):
        raise _usage(f"--caex-version {caex_version!r}; expected 3.0 or 2.15")
    site(bundle)
    folder = resolve_site(bundle) if bundle in list_sites() else Path(bundle)
    try:
        written = export_aml(folder, aml, version=caex_version, side_files=side_files)
    except ValueError as error:  # a layout CAEX cannot say (a station on a tilted parent)
        raise _usage(f"bundle {bundle!r}: {error}") from None
    for path in written:
        _console().print(f"wrote {path}", markup=False)


def _usage(message: str) -> Exception:
    from testbed.errors import UsageError

    return UsageError(message)
