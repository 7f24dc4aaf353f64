"""``testbed export minari CAMPAIGN_DIR``: a campaign's episodes as a Minari dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from testbed.cli import _checks, _egress, app
from testbed.errors import UsageError

export_app = typer.Typer(
    help="Export recorded episodes to other tools' formats (guide: docs/replay.md).",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


@export_app.command("minari")
def minari_command(
    campaign_dir: Annotated[Path, typer.Argument(help="Campaign folder with episode records.")],
    dataset_id: Annotated[
        str,
        typer.Option(
            "--dataset-id", help="Minari id, e.g. testbed/conveyor-sort/kr-changwon-scripted-v0."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Datasets root [default: MINARI_DATASETS_PATH or ~/.minari/datasets]."),
    ] = None,
    site: Annotated[str | None, typer.Option(help="Only episodes at this site.")] = None,
    policy: Annotated[
        str | None, typer.Option(help="Only this policy (config name or id@version).")
    ] = None,
    failed: Annotated[bool, typer.Option(help="Only episodes that did not succeed.")] = False,
    to: _egress.To = None,
    basis: _egress.Basis = "",
    requester: _egress.Requester = None,
) -> None:
    """Write the campaign's episodes as a Minari dataset (minari.load_dataset reads it).

    Exit codes: 0 written; 2 nothing to export (no such folder, a filter that matches no
    episode, unreadable or mixed records), the dataset exists already, or the egress gate
    refused a record for ``--to`` (nothing written; docs/governance.md).
    """
    from testbed.episodes.browse import EpisodeFilter, find_episodes
    from testbed.episodes.minari_export import export_minari

    console = Console(highlight=False, soft_wrap=True)
    where = EpisodeFilter(failed=failed, site=site, policy=policy)
    try:
        entries, _ = find_episodes(campaign_dir)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    _checks.episode_filter(entries, where, campaign_dir)
    egress = _egress.request(to, basis, requester)
    # ExportError and EgressRefused: exit 2
    result = export_minari(campaign_dir, dataset_id, out=out, where=where, egress=egress)
    console.print(
        f"OK {result.dataset_id}: {result.episodes} episodes, {result.steps} steps of "
        f"{result.env_id} {result.env_kwargs} in {result.path}",
        markup=False,
    )
    console.print(
        f"load it: MINARI_DATASETS_PATH={result.datasets_root} "
        f"python -c \"import minari; minari.load_dataset('{result.dataset_id}')\"",
        markup=False,
    )
