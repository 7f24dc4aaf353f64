"""``testbed report CAMPAIGN_DIR``: the transfer matrix of a campaign, as files and a summary."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from testbed.cli import _egress, app
from testbed.cli._errors import FAILED, print_error
from testbed.errors import TestbedError, UsageError


def _console() -> Console:
    # Built per call so output goes to the stdout that is current (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


@app.command()
def report(
    campaign_dir: Annotated[
        Path, typer.Argument(metavar="CAMPAIGN_DIR", help="Campaign folder (holds the trials).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Write the report here (default: the campaign folder).")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Baseline policy of the target-normalised score.")
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open report.html in the web browser.")
    ] = False,
    clips: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="Film the last SECONDS of every failed episode (GIF, into clips/ of the "
            "report folder) and show them in report.html.",
        ),
    ] = None,
    to: _egress.To = None,
    basis: _egress.Basis = "",
    requester: _egress.Requester = None,
    redacted: _egress.Redacted = False,
) -> None:
    """Aggregate every trial of a campaign into the transfer matrix and write the report.

    With ``--to``, each site's egress rules decide whether its episode rows and clips go into
    the report; what they keep is listed under "Withheld" (docs/governance.md).

    A campaign with per-site stores (``campaign.federated``) gets the coordinator's report:
    only the aggregates each site's gate lets out; each site reports on its own store.

    Exit codes: 0 written; 1 a report file cannot be written; 2 no such folder, a folder
    without episode records, or a --baseline that is not a policy of the campaign.
    """
    from testbed.campaign.summary import success_table
    from testbed.episodes.damaged_records import describe_set_aside
    from testbed.results.report import (
        write_report,  # imports matplotlib: only when the command runs
    )

    console = _console()
    if not campaign_dir.is_dir():
        raise UsageError(f"campaign folder {str(campaign_dir)!r}: no such folder")
    if _per_site_report(campaign_dir, out, to, requester, baseline, clips, open_):
        return
    try:
        egress = _egress.request(to, basis, requester, redacted)
        written = write_report(
            campaign_dir, out, baseline=baseline, clip_seconds=clips, egress=egress
        )
    except (TestbedError, ValueError) as error:  # no records, an unknown baseline
        raise UsageError(str(error)) from None
    except OSError as error:  # cannot write <file>: <reason>
        print_error(str(error))
        raise typer.Exit(FAILED) from None
    if written.damaged:
        console.print(describe_set_aside(list(written.damaged)), markup=False)
    for problem in written.skipped:
        console.print(f"skipped {problem}", markup=False)
    for problem in written.clip_problems:
        console.print(problem, markup=False)
    for withheld in written.withheld:
        console.print(f"withheld {withheld.describe()}", markup=False)
    console.print(success_table(written.matrix))
    console.print(f"report: {written.html}", markup=False)
    console.print(f"        {written.markdown}", markup=False)
    if open_:
        webbrowser.open(written.html.resolve().as_uri())


def _per_site_report(
    campaign_dir: Path,
    out: Path | None,
    to: str | None,
    requester: str | None,
    baseline: str | None,
    clips: float | None,
    open_: bool,
) -> bool:
    """The coordinator's report of a campaign with per-site stores; False for any other folder.

    Such a campaign's folder gets only what each site's gate lets out (its aggregate metrics);
    the episode-level report is made at each site, from its store (docs/governance.md).
    """
    from testbed.campaign.stores import campaign_stores
    from testbed.campaign.trial_status import read_json

    stores = campaign_stores(campaign_dir, read_json(campaign_dir / "campaign.json"))
    if not stores:
        return False
    for given, option in ((baseline, "--baseline"), (clips, "--clips")):
        if given is not None:
            raise UsageError(
                f"{option}: {campaign_dir} keeps each site's records in the site's own store, "
                "so its report holds only the aggregates the sites let out; "
                f"use {option} at a site: testbed report <its store> {option} ..."
            )
    from testbed.results.report_federated import write_coordinator_report

    try:
        written = write_coordinator_report(
            campaign_dir, stores, to or "coordinator", out=out, requester=requester
        )
    except (TestbedError, ValueError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        print_error(str(error))
        raise typer.Exit(FAILED) from None
    console = _console()
    for decision in written.refused:
        console.print(f"withheld by {decision.artifact.tags.site}: {decision.rule}", markup=False)
    console.print(f"coordinator's report (what the sites let out): {written.html}", markup=False)
    console.print(f"        {written.markdown}", markup=False)
    if open_:
        webbrowser.open(written.html.resolve().as_uri())
    return True
