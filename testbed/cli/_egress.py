"""The options every command that copies data out of a site's store shares (docs/governance.md).

``--to`` names who receives the output; without it the output stays with the site's own
operators. ``--basis``, ``--requester`` and ``--redacted`` go into the site's audit log with
the gate's decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from testbed.governance.records import EgressRequest

To = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Who receives the output (a site id, a team, coordinator): the egress gate applies "
        "the site's rules [default: the site's own operators].",
    ),
]
Basis = Annotated[
    str, typer.Option(help="Legal basis or purpose, recorded in the site's audit log.")
]
Requester = Annotated[
    str | None, typer.Option(help="Who asks, for the audit log [default: the login name].")
]
Redacted = Annotated[bool, typer.Option(help="State that persons in images or video are redacted.")]


def request(
    to: str | None, basis: str, requester: str | None, redacted: bool = False
) -> EgressRequest:
    """The egress request the options describe."""
    from testbed.governance.gate import current_user
    from testbed.governance.records import EgressRequest

    return EgressRequest(to, requester or current_user(), basis, redacted)
