"""``testbed run [--dry-run] [hydra overrides]``: run a campaign (Hydra sweeps, launchers).

Everything but ``--dry-run`` and ``--help`` goes to Hydra, after the overrides were checked and
every trial composed (`_plan`): an unknown key, option or value stops the run before anything
starts, with exit code 2 and one ``error:`` line (docs/cli.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from testbed.cli import app
from testbed.cli._errors import FAILED, USAGE, print_error
from testbed.errors import UsageError

SHORT_HELP = "Run a campaign of trials (policy x site x seed block) from Hydra configs."

RUN_HELP = """\
Usage: testbed run [--dry-run] [-m] [OVERRIDE]...

{short}
Rerunning a campaign skips finished trials and resumes interrupted ones; every run ends with one
summary (trials, failures, success matrix, transfer gaps) and the report's path.

Options:
  --dry-run          list the trials the overrides expand to and their status; nothing runs
  -m, --multirun     sweep: one trial per combination of comma-separated values
  --cfg job          print the composed config instead of running (Hydra)
  --hydra-help       Hydra's own help: its flags and every config group
  -h, --help         this page

Config groups (one option each; with -m, several, comma-separated):
  +campaign=PRESET   {campaign}
  policy=NAME        {policy}
  site=ID            {site}
                     (or site.path=DIR: your factory bundle folder)
  task=NAME          {task}
  hydra/launcher=L   {launcher} (the presets use local),
                     or any Hydra launcher (--hydra-help lists them)

Common overrides:
  campaign.episodes=N     episodes per trial (default 3; episodes already recorded are reused)
  campaign.workers=N      trials in parallel with hydra/launcher=local (default 2)
  campaign.name=NAME      the campaign folder is outputs/campaigns/NAME (or campaign.dir=DIR)
  seed=0,1,2              seed blocks of episodes (with -m)
  policy.address=HOST:PORT policy.token_env=VAR    a policy someone else serves (policy=remote)
  campaign.progress=false campaign.report=false    no progress bars, no report
  campaign.federated=true  each site's trials in its own store (<campaign folder>/stores/<site>,
                          or +campaign.stores.<site>=DIR); the report is the coordinator's
  policy.team=NAME        the model team a policy belongs to (attributed in the report)

Examples:
  testbed run +campaign=transfer_3site
  testbed run +campaign=transfer_3site campaign.episodes=20 campaign.workers=4
  testbed run -m policy=scripted_kr,random site=jp-nagoya,us-austin seed=0,1 \\
      campaign.name=my_sweep
  testbed run --dry-run +campaign=transfer_3site

Each trial logs to <campaign folder>/<trial>/trial.log, not the terminal.
Exit codes: 0 every trial of the run is done; 1 a trial failed or was left unfinished (rerun to
resume it), or Hydra stopped; 2 a usage error (unknown key or option, bad value, trials that
would share a folder), found before any trial starts. Guides: docs/campaigns.md, docs/cli.md.
"""

_SWEEP_FLAGS = ("-m", "--multirun")
_HELP_FLAGS = ("-h", "--help")
#: Logging chosen for a run unless the command line chooses: the launching process logs
#: warnings only (no launcher settings and job list before the progress bars), a trial logs to
#: its own folder (configs/hydra/hydra_logging/campaign.yaml, job_logging/trial_log.yaml).
_LOGGING = {"hydra/hydra_logging": "campaign", "hydra/job_logging": "trial_log"}


@app.command(
    "run",
    help=SHORT_HELP + " (testbed run --help)",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def run_command(ctx: typer.Context) -> None:
    """Hand the arguments to Hydra (or list the trials with ``--dry-run``)."""
    arguments = list(ctx.args)
    if any(a in _HELP_FLAGS for a in arguments):
        print(_help_page(), end="")
        return
    if "--dry-run" in arguments:
        arguments.remove("--dry-run")
        _dry_run(arguments)
        return
    trials = None  # Hydra's own flags (--cfg, --info, ...) go to Hydra unplanned
    if all(a in _SWEEP_FLAGS or not a.startswith("-") for a in arguments):
        from testbed.campaign.plan import collisions

        trials = _plan(arguments)  # every trial composes and validates before any starts
        if problems := collisions(trials):
            raise UsageError("\n".join(problems))
    from testbed.campaign.entry import run_job

    sys.argv = ["testbed run", *arguments, *_logging(arguments)]
    run_job()
    if trials is not None:
        _exit_status(trials)


def _help_page() -> str:
    from testbed.config import CONFIG_DIR

    def options(group: str) -> str:
        names = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        return ", ".join(names) or "none"

    return RUN_HELP.format(
        short=SHORT_HELP,
        campaign=options("campaign"),
        policy=options("policy"),
        site=options("site"),
        task=options("task"),
        launcher=options("hydra/launcher"),
    )


def _logging(arguments: list[str]) -> list[str]:
    """The `_LOGGING` choices the command line leaves open, as overrides."""
    return [f"{group}={option}" for group, option in _LOGGING.items()
            if not any(a.lstrip("+~").startswith(f"{group}=") for a in arguments)]  # fmt: skip


def _exit_status(trials: list) -> None:
    """Exit 1 when a trial of this run is not done (failed, interrupted, never started)."""
    from testbed.campaign.plan import trial_status

    unfinished = [t.name for t in trials if trial_status(t.config, t.folder)[0] != "done"]
    if unfinished:
        print_error(
            f"{len(unfinished)} of {len(trials)} trials of this run did not finish "
            f"({', '.join(unfinished)}): exit code 1",
            ["rerun the same command to retry them (finished trials are skipped)"],
        )
        raise typer.Exit(code=FAILED)


def _plan(arguments: list[str]) -> list:
    """Check the overrides, then compose every trial of the run; a mistake is a `UsageError`."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from testbed.campaign.plan import plan_campaign
    from testbed.cli._overrides import check_overrides, hydra_error
    from testbed.config import CONFIG_DIR, register_configs

    register_configs()
    check_overrides(arguments, CONFIG_DIR, "config", "testbed run")
    multirun = any(a in _SWEEP_FLAGS for a in arguments)
    overrides = [a for a in arguments if a not in _SWEEP_FLAGS]
    try:
        trials = plan_campaign(overrides, multirun)
    except (HydraException, OmegaConfBaseException) as exc:
        raise hydra_error(exc) from None
    except ValueError as exc:  # validate(): names the key and what was expected
        raise UsageError(str(exc)) from None
    _check_trials(trials)
    return trials


def _check_trials(trials: list) -> None:
    """What composing cannot see: an unregistered env id, an unknown managed policy spec."""
    import gymnasium

    import envs
    from testbed.cli import _checks
    from testbed.cli._errors import unknown

    for trial in trials:
        env_id = trial.config.task.env_id
        if env_id not in gymnasium.registry:
            raise unknown("task.env_id", env_id, list(envs.ENV_IDS))
        policy = trial.config.policy
        if policy.kind == "managed" and policy.serve:
            _checks.policy_spec(str(policy.serve), where="policy.serve", env_id=env_id)


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
    Console().print(table)
    if problems := collisions(trials):
        print_error("\n".join(problems))
        raise typer.Exit(code=USAGE)
