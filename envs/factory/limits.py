"""Size limits of a bundle (untrusted input) and the cap on how many issues are listed.

A production log can be months long: a 1.5-million-row log took 97 s and 3 GB to reject row by
row, and printed 290,000 lines. Files above their byte limit are refused before they are
parsed (`snapshot` reads no more than the limit), CSV files above their row limit before their
rows are validated, and at most `LISTED_PER_FILE` issues are kept per file; the rest are
counted and summed up in one last issue of that file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from envs.errors import DataIssue

MIB = 1024 * 1024
MAX_BYTES = {
    "site.yaml": 1 * MIB,
    "stations.csv": 1 * MIB,
    "parts.csv": 1 * MIB,
    "arrivals.csv": 16 * MIB,
}
"""Largest accepted size of each bundle file (bytes)."""
MAX_ASSET_BYTES = 64 * MIB
"""Largest accepted size of a file under assets/ (bytes)."""
MAX_ROWS = {"stations.csv": 500, "parts.csv": 1_000, "arrivals.csv": 100_000}
"""Most data rows accepted in each CSV file (100,000 log rows load in about 4 s)."""
LISTED_PER_FILE = 50
"""Most issues listed per file; the others are counted."""


def max_bytes(name: str) -> int:
    """The byte limit of a bundle-relative file name."""
    return MAX_BYTES.get(name, MAX_ASSET_BYTES)


def size_issue(name: str, size: int) -> DataIssue | None:
    """An issue if a file's bytes exceed its limit (``size`` may be limit + 1: read no further)."""
    limit = max_bytes(name)
    if size <= limit:
        return None
    return DataIssue(
        name,
        "",
        f"more than {limit // MIB} MiB",
        f"a file of at most {limit // MIB} MiB"
        + (
            f" and {MAX_ROWS[name]:,} rows: keep a representative stretch of the log "
            "(the arrival process needs gaps and part shares, not months of history)"
            if name == "arrivals.csv"
            else ""
        ),
    )


class IssueList(list[DataIssue]):
    """A list of issues that keeps the first `LISTED_PER_FILE` of each file and counts the rest."""

    def __init__(self, issues: Iterable[DataIssue] = ()) -> None:
        super().__init__()
        self.listed: Counter[str] = Counter()
        self.unlisted: Counter[str] = Counter()
        for issue in issues:
            self.append(issue)

    def append(self, issue: DataIssue) -> None:  # noqa: D102 (list.append, capped)
        if self.listed[issue.file] >= LISTED_PER_FILE:
            self.unlisted[issue.file] += 1
            return
        self.listed[issue.file] += 1
        super().append(issue)

    def extend(self, issues: Iterable[DataIssue]) -> None:  # noqa: D102 (list.extend, capped)
        for issue in issues:
            self.append(issue)

    @property
    def total(self) -> int:
        """Every issue found, listed or not."""
        return sum(self.listed.values()) + sum(self.unlisted.values())

    def summaries(self) -> list[DataIssue]:
        """One issue per file with unlisted issues, saying how many more there are."""
        return [
            DataIssue(
                file,
                f"{count:,} more issue(s) not listed",
                f"{count + LISTED_PER_FILE:,} issues in this file",
                f"at most {LISTED_PER_FILE} listed per file: fix those above (often one cause) "
                "and check again",
            )
            for file, count in self.unlisted.items()
        ]
