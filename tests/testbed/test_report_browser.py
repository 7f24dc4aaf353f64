"""The HTML report in a real browser: Debian's headless Chromium driven by Playwright.

Nothing is downloaded: Playwright's Python package drives the system Chromium
(``/usr/bin/chromium``, Debian's ``chromium`` package, which ``scripts/install.sh`` installs);
``playwright install`` is never run. Without Chromium or the package the tests skip, except
under CI (``CI=true``), where they fail: CI must run them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

from testbed.results.episode_pages import cell_anchor
from testbed.results.report import write_report
from tests.testbed.test_report import SEEDS, campaign  # noqa: F401

CHROMIUM = Path(os.environ.get("TESTBED_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000  # every wait of a test is bounded by this
WIDTHS = (390, 1400)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (scripts/install.sh installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A persistent Chromium context with a fresh profile folder."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            timeout=TIMEOUT_MS,
            viewport={"width": WIDTHS[-1], "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def report_html(campaign: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A report of the synthetic campaign with a GIF clip beside one failed record."""
    root = tmp_path_factory.mktemp("browsed") / "campaign"
    shutil.copytree(campaign, root)
    frames = [Image.new("RGB", (64, 48), color) for color in ("red", "blue")]
    clip = root / "rnd-at-b" / "episodes" / "ep-00002.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=200, loop=0)
    return write_report(root, root / "report").html


class _Watched:
    """A page with its console errors, page errors and failed requests collected."""

    def __init__(self, context: Any, width: int) -> None:
        self.page = context.new_page()
        self.page.set_viewport_size({"width": width, "height": 900})
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", self._failed)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _failed(self, request: Any) -> None:
        self.problems.append(f"request failed: {request.url} ({request.failure})")

    def open(self, path: Path) -> Any:
        self.page.goto(path.as_uri(), wait_until="load")
        self.page.wait_for_function(
            "() => Array.from(document.images).every(i => i.complete)", timeout=TIMEOUT_MS
        )
        return self.page


@pytest.mark.parametrize("width", WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def test_report_loads_clean_with_images_links_and_no_page_overflow(
    browser: Any, report_html: Path, width: int
) -> None:
    watched = _Watched(browser, width)
    try:
        page = watched.open(report_html)
        images = page.evaluate(
            "() => Array.from(document.images).map(i => [i.alt, i.naturalWidth])"
        )
        figures = page.locator(".figure img").count()
        assert figures >= 3 and len(images) == figures + 1  # and the clip
        assert all(natural > 0 for _, natural in images), images
        hrefs = page.evaluate(
            "() => Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))"
        )
        assert hrefs and _broken(page, report_html, hrefs) == []
        overflow = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert overflow[0] <= overflow[1], f"page scrolls sideways at {width} px: {overflow}"
        assert page.evaluate("() => document.querySelectorAll('.tools input').length") > 0
        assert watched.problems == []
    finally:
        watched.page.close()


def _broken(page: Any, html: Path, hrefs: list[str]) -> list[str]:
    broken = []
    for href in hrefs:
        if href.startswith("#"):
            if not page.evaluate("id => !!document.getElementById(id)", unquote(href[1:])):
                broken.append(f"{href}: no such anchor")
        elif urlparse(href).scheme:
            broken.append(f"{href}: leaves the report folder")
        elif not (html.parent / unquote(href)).is_file():
            broken.append(f"{href}: no such file")
    return broken


@pytest.mark.parametrize("width", WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def test_a_click_on_a_zero_cell_reaches_its_failed_episodes(
    browser: Any, report_html: Path, width: int
) -> None:
    watched = _Watched(browser, width)
    try:
        page = watched.open(report_html)
        zero = f"0/{len(SEEDS)}"
        cell = page.locator("table a", has_text=re.compile(rf"(?<!\d){zero}")).first
        cell.click()
        target = cell_anchor("random", "site-b")
        page.wait_for_function(f"() => location.hash === '#{target}'", timeout=TIMEOUT_MS)
        section = page.locator(f"section#{target}")
        box = section.bounding_box()
        assert box is not None and 0 <= box["y"] < 900  # scrolled into view
        assert page.evaluate("() => document.querySelector('section:target').id") == target
        rows = section.locator("tbody tr")
        assert rows.count() == len(SEEDS)
        assert section.locator("tbody tr .bad").count() == len(SEEDS)
        assert "testbed replay" in rows.first.inner_text()
        clip = section.locator("figure.clip img")
        assert clip.count() == 1 and clip.evaluate("img => img.naturalWidth") == 64
        assert watched.problems == []
    finally:
        watched.page.close()


def test_tables_sort_and_filter(browser: Any, report_html: Path) -> None:
    watched = _Watched(browser, WIDTHS[-1])
    try:
        page = watched.open(report_html)
        section = page.locator(f"section#{cell_anchor('pa', 'site-b')}")
        seeds = section.locator("tbody tr td:first-child")
        assert seeds.all_inner_texts() == [str(s) for s in SEEDS]
        header = section.locator("thead th", has_text="seed")
        header.click()  # ascending (already)
        header.click()  # descending
        assert seeds.all_inner_texts() == [str(s) for s in reversed(SEEDS)]
        assert header.get_attribute("aria-sort") == "descending"
        section.locator(".tools input[type=checkbox]").check()
        visible = section.locator("tbody tr:not([hidden])")
        assert visible.count() == 7  # pa at site-b: 3 of 10 succeeded
        section.locator(".tools input[type=search]").fill("seed-does-not-exist")
        assert visible.count() == 0
        assert section.locator(".tools .count").inner_text() == "0 of 10 rows"
        kpis = page.locator("h2#kpis + .tools + .scroll table")
        energy = kpis.locator("thead th", has_text="energy J/part")
        energy.click()
        values = [
            float(v.split()[0])
            for v in kpis.locator("tbody td:nth-child(7)").all_inner_texts()
            if v != "n/a"
        ]
        assert values == sorted(values)
        assert watched.problems == []
    finally:
        watched.page.close()
