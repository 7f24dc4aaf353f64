"""``testbed episodes CAMPAIGN_DIR``: list a campaign's recorded episodes, filter, replay them.

A file under a record's name that holds no usable record (damaged, or not a record) is set aside
(renamed to ``*.npz.damaged``) and listed on stderr with its path and what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from testbed.cli import _checks, app
from testbed.errors import UsageError

if TYPE_CHECKING:
    from testbed.episodes.browse import EpisodeEntry
    from testbed.episodes.damaged_records import SetAside


def _console() -> Console:
    # Built per call so output goes to the stdout that is current (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=True)


@app.command("episodes")
def episodes_command(
    campaign_dir: Annotated[Path, typer.Argument(help="Campaign folder to browse.")],
    failed: Annotated[bool, typer.Option(help="Only episodes that did not succeed.")] = False,
    site: Annotated[str | None, typer.Option(help="Only episodes at this site.")] = None,
    policy: Annotated[
        str | None, typer.Option(help="Only this policy (config name or id@version).")
    ] = None,
    violation: Annotated[
        str | None, typer.Option(help="Only episodes with this safety violation kind.")
    ] = None,
    fault: Annotated[bool, typer.Option(help="Only episodes with a policy fault.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List recorded episodes (site, policy, seed, outcome, faults, violations, replay command).

    Exit codes: 0 listed (possibly none); 2 no such folder, or --site / --policy matches no
    episode of the campaign.
    """
    from testbed.episodes.browse import EpisodeFilter, find_episodes, select_episodes
    from testbed.episodes.damaged_records import describe_set_aside

    console = _console()
    damaged: list[SetAside] = []
    try:
        entries, problems = find_episodes(campaign_dir, damaged)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    where = EpisodeFilter(failed, site, policy, violation, fault)
    _checks.episode_filter(entries, where, campaign_dir)
    chosen = select_episodes(entries, where)
    if as_json:
        console.print_json(json.dumps([entry.to_json() for entry in chosen]))
    else:
        console.print(_table(chosen, campaign_dir))
        console.print(f"{len(chosen)} of {len(entries)} episodes", markup=False)
        # Whole commands, one per line, never truncated: copy and paste one to replay.
        for number, entry in enumerate(chosen, start=1):
            console.print(f"#{number}  {entry.replay_command()}", markup=False)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    if damaged:
        errors.print(describe_set_aside(damaged), markup=False)
    for problem in problems:
        errors.print(f"skipped {problem}", markup=False)


def _table(entries: list[EpisodeEntry], campaign_dir: Path) -> Table:
    # The trial and file are in the replay commands printed below the table.
    table = Table(
        title=f"Episodes in {campaign_dir}", box=None, pad_edge=False, header_style="bold underline"
    )
    for column in ("#", "site", "policy", "home", "seed", "ep", "outcome", "faults", "violations"):
        table.add_column(column, overflow="fold")
    for number, entry in enumerate(entries, start=1):
        meta = entry.meta
        style = "green" if entry.success else "red"
        violations = ", ".join(f"{k} {n}" for k, n in entry.violations.items())
        table.add_row(
            str(number),
            meta.site,
            meta.policy,
            meta.home_site,
            str(meta.seed),
            str(meta.episode),
            Text(entry.outcome, style=style),  # a reason may hold brackets: no markup
            ", ".join(entry.fault_kinds) or "-",
            violations or "-",
        )
    return table
