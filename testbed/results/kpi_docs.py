"""The KPI table of docs/campaigns.md, generated from the registry (`testbed.results.kpis`).

``python -m testbed.results.kpi_docs`` prints it; ``--write docs/campaigns.md`` refreshes it
between its markers (a test fails when the docs are stale).
"""

from __future__ import annotations

import sys
from pathlib import Path

from testbed.results.kpis import ENV, KPI, KPIS, TESTBED, Registry

#: The markers around the generated KPI table in docs/campaigns.md.
DOCS_BEGIN = (
    "<!-- KPI table: generated from testbed/results/kpis.py "
    "(python -m testbed.results.kpi_docs --write) -->"
)
DOCS_END = "<!-- end of the generated KPI table -->"


def docs_table(kpis: Registry = KPIS) -> str:
    """The KPI table of the docs, as Markdown (one row per KPI, in report order)."""
    whiskers = {k.chart.whisker for k in kpis.values() if k.chart}
    rows = [
        "| KPI (report column) | `transfer_matrix.csv` | reads (episode table) | unit | "
        "aggregation | how it is aggregated | better | `kpis.png` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in kpis.values():
        chart = "bar" if k.chart else "whisker" if k.name in whiskers else ""
        rows.append(
            f"| {k.column} | `{k.name}` | `{k.summary_key}`{_source(k)} | {k.unit} | "
            f"`{k.aggregation}` over `{k.over}` | {k.doc} | "
            f"{'higher' if k.higher_is_better else 'lower'} | {chart} |"
        )
    return "\n".join(rows) + "\n"


def _source(kpi: KPI) -> str:
    if kpi.source == ENV:
        return ""
    if kpi.source == TESTBED:
        return " (testbed)"
    return f" ({', '.join(kpi.source)} only)"


def write_docs(path: Path) -> bool:
    """Put `docs_table` between the markers of ``path``; returns whether the file changed.

    Raises:
        ValueError: If ``path`` lacks the markers.
    """
    text = path.read_text(encoding="utf-8")
    head, found, rest = text.partition(DOCS_BEGIN + "\n")
    _, found_end, tail = rest.partition(DOCS_END)
    if not (found and found_end):
        raise ValueError(f"{path}: no KPI table markers ({DOCS_BEGIN} ... {DOCS_END})")
    new = head + DOCS_BEGIN + "\n" + docs_table() + DOCS_END + tail
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # python -m testbed.results.kpi_docs [--write DOC.md]
    if sys.argv[1:2] == ["--write"]:
        for doc in sys.argv[2:] or ["docs/campaigns.md"]:
            print(f"{doc}: {'updated' if write_docs(Path(doc)) else 'up to date'}")
    else:
        print(docs_table(), end="")
