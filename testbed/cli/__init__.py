"""The ``testbed`` command line: the composition root.

Each subcommand lives in its own module and registers itself on `app`. This is the only place
in `testbed` allowed to import `policies` (e.g. ``testbed serve`` starts a policy server).
Errors are reported in one style, with one exit-code scheme, by the root group
(`testbed.cli._errors`, docs/cli.md).
"""

from __future__ import annotations

import typer

from testbed.cli._errors import TestbedGroup

app = typer.Typer(
    cls=TestbedGroup,
    name="testbed",
    help="Physical-AI Testbed: manufacturing cells from factory data, policies over gRPC, "
    "trial campaigns and transfer reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    import testbed.cli.audit  # noqa: F401
    import testbed.cli.bench  # noqa: F401
    import testbed.cli.check_policy  # noqa: F401
    import testbed.cli.episodes  # noqa: F401
    import testbed.cli.export  # noqa: F401
    import testbed.cli.replay  # noqa: F401
    import testbed.cli.report  # noqa: F401
    import testbed.cli.serve  # noqa: F401
    import testbed.cli.train  # noqa: F401
    from testbed.cli import run, sites  # noqa: F401


def main() -> None:
    """Entry point of the ``testbed`` console script."""
    _register()
    app()
