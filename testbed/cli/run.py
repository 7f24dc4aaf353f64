"""``testbed run [--dry-run] [hydra overrides]``: run a campaign (Hydra sweeps, launchers)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from testbed.cli import app

RUN_HELP = """Run a campaign of trials (policy x site x seed block) from Hydra configs.

Examples:

  testbed run +campaign=transfer_3site            (the default campaign; a multirun)

  testbed run +campaign=transfer_3site campaign.episodes=10 hydra/launcher=submitit_local

  testbed run -m policy=scripted_kr,scripted_jp site=jp-nagoya seed=0,1

  testbed run --dry-run +campaign=transfer_3site  (list trials and their status)

Everything after `run` goes to Hydra (`testbed run --help` shows its config groups). Rerunning
a campaign skips finished trials and resumes interrupted ones. Every run ends with the same
summary (trials, failures, success matrix, transfer gaps) and the report's path.

Exit codes: 0 every trial of the run is done; 1 a trial failed or was left unfinished (rerun
to resume it), or Hydra stopped; 2 a usage error (bad override or value, trials that would
share a folder), found before any trial starts.
"""


@app.command(
    "run",
    help=RUN_HELP,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def run_command(ctx: typer.Context) -> None:
    """Hand the arguments to Hydra (or list the trials with ``--dry-run``)."""
    arguments = list(ctx.args)
    if "--dry-run" in arguments:
        arguments.remove("--dry-run")
        _dry_run(arguments)
        return
    trials = None  # Hydra's own flags (--cfg, --info, ...) go to Hydra unplanned
    if all(a in _SWEEP_FLAGS or not a.startswith("-") for a in arguments):
        from testbed.campaign.plan import collisions

        trials = _plan(arguments)  # every trial composes and validates before any starts
        if problems := collisions(trials):
            raise typer.BadParameter("\n".join(problems), param_hint="overrides")
    from testbed.campaign.entry import run_job

    sys.argv = ["testbed run", *arguments]
    run_job()
    if trials is not None:
        _exit_status(trials)


_SWEEP_FLAGS = ("-m", "--multirun")


def _exit_status(trials: list) -> None:
    """Exit 1 when a trial of this run is not done (failed, interrupted, never started)."""
    from testbed.campaign.plan import trial_status

    unfinished = [t.name for t in trials if trial_status(t.config, t.folder)[0] != "done"]
    if unfinished:
        Console(stderr=True, highlight=False).print(
            f"{len(unfinished)} of {len(trials)} trials of this run did not finish "
            f"({', '.join(unfinished)}): exit code 1",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _plan(arguments: list[str]) -> list:
    """Compose every trial of the run; a bad override or value is a usage error naming it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from testbed.campaign.plan import plan_campaign

    multirun = any(a in _SWEEP_FLAGS for a in arguments)
    overrides = [a for a in arguments if a not in _SWEEP_FLAGS]
    try:
        return plan_campaign(overrides, multirun)
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="overrides") from exc


def _dry_run(arguments: list[str]) -> None:
    from testbed.campaign.plan import collisions

    trials = _plan(arguments)
    folders = sorted({str(t.folder.parent) for t in trials})
    title = f"{len(trials)} trials in {', '.join(folders)} (dry run: nothing ran)"
    table = Table("#", title=title)
    table.add_column("trial", overflow="fold")  # whole names: they are the folders' names
    for column in ("home site", "episodes", "status"):
        table.add_column(column)
    first: dict[Path, int] = {}
    for number, t in enumerate(trials, start=1):
        status = f"{t.status} ({t.recorded} recorded)" if t.status == "partial" else t.status
        if (earlier := first.setdefault(t.folder, number)) != number:
            status = f"[red]same folder as #{earlier}[/]"
        table.add_row(str(number), t.name, t.config.policy.home_site,
                      str(t.config.campaign.episodes), status)  # fmt: skip
    console = Console()
    console.print(table)
    if problems := collisions(trials):
        for problem in problems:
            console.print(f"error: {problem}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(code=2)
