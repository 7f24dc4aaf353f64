"""The report's document model: a list of blocks, and its two renderings (Markdown, HTML).

A block is a tuple: ``("h1" | "h2" | "h3" | "h4" | "p", text)`` (a heading may add an anchor id
as a third element; an ``h4`` has none unless given), ``("ul", items)``,
``("table", header, rows)`` (a fourth element ``"filterable"`` always gives it the page's
filter box), ``("img", file, alt)`` (a PNG of the
report folder, embedded), ``("media", href, alt)`` (a clip linked from the report folder:
GIF/WebP as an image, MP4/WebM as a video), ``("details", summary, text)`` or
``("section", id, blocks)`` (an anchored group of blocks). A list item or table cell is text,
or a `Link`, `Code` or `Mark`. Both renderings come from the same blocks, so they always say
the same thing.

The HTML page is one file: inline style and script (`testbed.results.report_assets`), figures
as data URIs; only clips are files beside it, linked by relative paths.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.results.report_assets import CSS, JS

Block = tuple[Any, ...]

VIDEO_SUFFIXES = (".mp4", ".webm")


@dataclass(frozen=True)
class Link:
    """Text that links to ``href`` (``#anchor`` or a path relative to the report)."""

    text: str
    href: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Code:
    """A command or path, shown verbatim (selected whole on a click in the page)."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Mark:
    """Text with a meaning the page shows: ``bad`` (a failure) or ``good``."""

    text: str
    kind: str

    def __str__(self) -> str:
        return self.text


def anchor(*parts: str) -> str:
    """An HTML id from ``parts``: lower case, runs of other characters as ``-``."""
    return "-".join(re.sub(r"[^a-z0-9_.]+", "-", p.lower()).strip("-") for p in parts)


def to_markdown(blocks: list[Block]) -> str:
    """The document as Markdown (figures as relative image links)."""
    return "\n\n".join(_md_block(block) for block in blocks) + "\n"


def _md_block(block: Block) -> str:
    kind, *args = block
    if kind in ("h1", "h2", "h3", "h4"):
        heading = "#" * int(kind[1]) + " " + args[0]
        return f'<a id="{args[1]}"></a>\n\n{heading}' if len(args) > 1 else heading
    if kind == "p":
        return str(args[0])
    if kind == "ul":
        return "\n".join(f"- {_md_inline(item)}" for item in args[0])
    if kind == "table":
        cells = [args[0], ["---"] * len(args[0]), *args[1]]
        return "\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells)
    if kind == "img":
        return f"![{args[1]}]({args[0]})"
    if kind == "media":
        return f"[{args[1]}]({args[0]})"
    if kind == "details":
        return f"{args[0]}:\n\n```\n{args[1]}\n```"
    if kind == "section":
        return f'<a id="{args[0]}"></a>\n\n' + "\n\n".join(_md_block(b) for b in args[1])
    raise ValueError(f"unknown report block {kind!r}")


def _md_inline(value: Any) -> str:
    if isinstance(value, Link):
        return f"[{value.text}]({value.href})"
    if isinstance(value, Code):
        return f"`{value.text}`"
    return str(value)


def _md_cell(value: Any) -> str:
    return _md_inline(value).replace("|", "\\|").replace("\n", " ")


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """The document as one HTML page (figures from ``folder`` as data URIs)."""
    body = "\n".join(_html_block(block, folder) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{body}\n<script>{JS}</script>\n</body>\n</html>\n"
    )


def _inline(value: Any) -> str:
    esc = html.escape
    if isinstance(value, Link):
        return f'<a href="{esc(value.href)}">{esc(value.text)}</a>'
    if isinstance(value, Code):
        return f'<code class="cmd">{esc(value.text)}</code>'
    if isinstance(value, Mark):
        return f'<span class="{esc(value.kind)}">{esc(value.text)}</span>'
    return esc(str(value))


def _html_block(block: Block, folder: Path) -> str:
    kind, *args = block
    esc = html.escape
    if kind in ("h1", "h2", "h3", "h4"):
        if kind == "h4" and len(args) == 1:  # repeated under several headings: no id
            return f"<h4>{esc(args[0])}</h4>"
        ident = args[1] if len(args) > 1 else anchor(args[0])
        return f'<{kind} id="{esc(ident)}">{esc(args[0])}</{kind}>'
    if kind == "p":
        return f"<p>{_inline(args[0])}</p>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in args[0]) + "</ul>"
    if kind == "table":
        head = "".join(f"<th>{esc(str(h))}</th>" for h in args[0])
        rows = "".join(
            "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in args[1]
        )
        opens = '<table class="filterable">' if "filterable" in args[2:] else "<table>"
        table = f"{opens}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        return f'<div class="scroll">{table}</div>'
    if kind == "img":
        data = base64.b64encode((folder / args[0]).read_bytes()).decode("ascii")
        image = f'<img src="data:image/png;base64,{data}" alt="{esc(args[1])}">'
        return f'<div class="scroll figure">{image}</div>'
    if kind == "media":
        return _media(args[0], args[1])
    if kind == "details":
        return f"<details><summary>{esc(args[0])}</summary><pre>{esc(args[1])}</pre></details>"
    if kind == "section":
        inner = "\n".join(_html_block(b, folder) for b in args[1])
        return f'<section class="cell" id="{esc(args[0])}">\n{inner}\n</section>'
    raise ValueError(f"unknown report block {kind!r}")


def _media(href: str, alt: str) -> str:
    esc = html.escape
    if href.lower().endswith(VIDEO_SUFFIXES):
        player = f'<video src="{esc(href)}" controls muted loop preload="metadata"></video>'
    else:
        player = f'<img src="{esc(href)}" alt="{esc(alt)}">'
    caption = f'<a href="{esc(href)}">{esc(alt)}</a>'
    return f'<figure class="clip">{player}<figcaption>{caption}</figcaption></figure>'
