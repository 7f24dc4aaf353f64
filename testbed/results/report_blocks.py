"""The report's document model: a list of blocks, and its two renderings (Markdown, HTML).

A block is a tuple: ``("h1" | "h2" | "h3" | "p", text)``, ``("ul", items)``,
``("table", header, rows)``, ``("img", file, alt)`` or ``("details", summary, text)``.
Both renderings come from the same blocks, so they always say the same thing.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

Block = tuple[Any, ...]


def to_markdown(blocks: list[Block]) -> str:
    """The document as Markdown (figures as relative image links)."""
    out: list[str] = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + args[0])
        elif kind == "p":
            out.append(args[0])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in args[0]))
        elif kind == "table":
            cells = [args[0], ["---"] * len(args[0]), *args[1]]
            out.append(
                "\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells)
            )
        elif kind == "img":
            out.append(f"![{args[1]}]({args[0]})")
        elif kind == "details":
            out.append(f"{args[0]}:\n\n```json\n{args[1]}\n```")
    return "\n\n".join(out) + "\n"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; font-size: 12px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
"""


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """The document as one self-contained HTML page (figures from ``folder`` as data URIs)."""
    body = "\n".join(_html_block(block, folder) for block in blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _html_block(block: Block, folder: Path) -> str:
    kind, *args = block
    esc = html.escape
    if kind in ("h1", "h2", "h3", "p"):
        return f"<{kind}>{esc(args[0])}</{kind}>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in args[0]) + "</ul>"
    if kind == "table":
        head = "".join(f"<th>{esc(str(h))}</th>" for h in args[0])
        rows = "".join(
            "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in args[1]
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if kind == "img":
        data = base64.b64encode((folder / args[0]).read_bytes()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{esc(args[1])}">'
    if kind == "details":
        return f"<details><summary>{esc(args[0])}</summary><pre>{esc(args[1])}</pre></details>"
    raise ValueError(f"unknown report block {kind!r}")
