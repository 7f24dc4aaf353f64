"""``testbed bench``: measure the testbed side by side with the libraries it stands on.

Composition root: builds the in-process scripted policies and the policy server (``policies``)
that the benchmarks in `testbed.bench` drive. Heavy imports happen inside the command, so
``testbed --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from testbed.cli import _checks, app
from testbed.cli._errors import one_of
from testbed.errors import UsageError

if TYPE_CHECKING:
    from testbed.bench.output import BenchReport

SECTIONS_HELP = (
    "Comma-separated sections to run: env, link, campaign, replay, memory, camera (default: all)"
)
ENV_HELP = "Comma-separated env ids (tasks) for the env section (default: every Testbed env)"


@app.command("bench")
def bench_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="Short measurements (about a minute; CI smoke run)")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write every figure and the machine to FILE")
    ] = None,
    only: Annotated[str | None, typer.Option("--only", help=SECTIONS_HELP)] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Also print the table as Markdown (for the README)")
    ] = False,
    env: Annotated[str | None, typer.Option("--env", help=ENV_HELP)] = None,
) -> None:
    """Measure the testbed against raw PyBullet, panda-gym and a bare grpcio echo, in one run.

    Sections: env overhead, policy link, campaign scaling, replay and video speed, memory.
    Figures are ratios measured side by side (docs/benchmarks.md). Exit codes: 0 measured; 1 a
    section failed; 2 a bad option.
    """
    from rich.console import Console

    from testbed.bench.figures import FULL, QUICK, SECTIONS
    from testbed.bench.output import markdown as to_markdown
    from testbed.bench.output import table
    from testbed.bench.suite import run_bench

    sections = _sections(only, SECTIONS)
    env_ids = _checks.env_ids(env)
    console = Console(highlight=False, log_path=False)
    if not console.is_terminal:  # piped: wide enough for the table instead of rich's 80 columns
        console = Console(highlight=False, log_path=False, width=150)
    profile = QUICK if quick else FULL
    with console.status(f"testbed bench ({profile.name})") as status:

        def progress(line: str) -> None:
            status.update(f"testbed bench ({profile.name}): {line}")
            console.log(line)

        report = run_bench(
            profile, sections, _scripted_policy, _serve, progress, env_ids, _task_policy
        )
    console.print(table(report))
    _print_notes(console, report)
    if markdown:
        console.print(to_markdown(report), markup=False, soft_wrap=True)
    if json_path is not None:
        report.write_json(json_path)
        console.print(f"wrote {json_path}")
    if report.failed:
        raise typer.Exit(code=1)


def _sections(only: str | None, known: tuple[str, ...]) -> list[str]:
    if only is None:
        return list(known)
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    if not chosen:
        raise UsageError(f"--only {only!r}: expected some of {', '.join(known)}, comma-separated")
    for section in chosen:
        if section not in known:
            raise UsageError(one_of(f"--only: unknown section {section!r}", section, known))
    return chosen


def _print_notes(console: Any, report: BenchReport) -> None:
    for section in report.sections:
        for note in section.notes:
            console.print(f"note: {note}", markup=False)
        if section.error:
            console.print(f"[red]{section.section} failed:[/red] {section.error}", markup=True)


def _scripted_policy(site: str) -> Any:
    from policies.scripted import scripted_policy

    return scripted_policy(site)


def _task_policy(env_id: str, site: str) -> Any:
    """The scripted controller of a task at a site, or None (random actions drive the env)."""
    from testbed.cli._scripted import scripted_for

    return scripted_for(env_id, site)


def _serve(policy: Any) -> Any:
    from policies import serve

    server = serve(policy, "127.0.0.1:0")
    if not server.wait_until_serving(30):
        server.stop(grace=0)
        raise RuntimeError("the benchmark policy server did not become SERVING within 30 s")
    return server
