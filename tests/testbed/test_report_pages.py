"""The report's episode sections, campaign section and method, read from the written files."""

from __future__ import annotations

import dataclasses
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageSequence

from testbed.episodes.records import record_path, write_record
from testbed.results.episode_pages import cell_anchor, find_clip
from testbed.results.report import WrittenReport, write_report
from testbed.results.report_campaign import shared_config, sweep_axes
from tests.testbed.test_report import SEEDS, _record, _trial_json, campaign  # noqa: F401


class _Page(HTMLParser):
    """Ids, links, and the table rows of each section of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.sections: dict[str, list[list[str]]] = {}
        self._section: str | None = None
        self._href: str | None = None
        self._text: list[str] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if attr.get("id"):
            self.ids.add(str(attr["id"]))
        if tag == "section":
            self._section = str(attr.get("id"))
            self.sections[self._section] = []
        elif tag == "a" and attr.get("href"):
            self._href, self._text = str(attr["href"]), []
        elif tag == "tr" and self._section:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text)))
            self._href = None
        elif tag == "tr" and self._row and self._section:
            self.sections[self._section].append(self._row)
            self._row = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)
        if self._row:
            self._row[-1] += data


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


@pytest.fixture(scope="module")
def written(campaign: Path, tmp_path_factory: pytest.TempPathFactory) -> WrittenReport:  # noqa: F811
    return write_report(campaign, tmp_path_factory.mktemp("report"))


def test_every_matrix_cell_links_to_its_episode_section(written: WrittenReport) -> None:
    page = _page(written.html)
    report = written.matrix
    for cell in report.cells.values():
        anchor = cell_anchor(cell.policy, cell.site)
        assert anchor in page.sections, anchor
        texts = [text for href, text in page.links if href == f"#{anchor}"]
        # success and retention matrices, the KPI table (+ the failures table below 100%)
        assert len(texts) >= 3, (anchor, texts)
        assert f"{cell.successes}/{cell.episodes}" in texts[0]
    for href, _ in page.links:
        assert href.startswith("#") and href[1:] in page.ids, href


def test_a_section_lists_every_episode_with_reason_and_replay_command(
    written: WrittenReport,
    campaign: Path,  # noqa: F811
) -> None:
    rows = _page(written.html).sections[cell_anchor("pa", "site-b")]
    assert [row[0] for row in rows] == [str(s) for s in SEEDS]
    assert [row[1] for row in rows] == ["success"] * 3 + ["failed"] * 7
    record = campaign / "pa-at-b" / "episodes" / "ep-00004.npz"
    assert rows[4][2] != "" and rows[4][3] == f"testbed replay {record}"
    assert rows[0][2] == ""  # no reason for a success
    assert rows[0][5] == "4/4"  # parts sorted / total
    markdown = written.markdown.read_text()
    assert f'<a id="{cell_anchor("pa", "site-b")}"></a>' in markdown
    assert f"`testbed replay {record}`" in markdown


def test_a_faulted_episode_shows_its_fault_as_reason(written: WrittenReport) -> None:
    rows = _page(written.html).sections[cell_anchor("pb", "site-a")]
    assert rows[9][1:3] == ["failed", "policy fault: unavailable"]


def test_clips_of_failed_episodes_are_found_and_shown(
    campaign: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = tmp_path / "c"
    shutil.copytree(campaign, root)
    beside = root / "rnd-at-b" / "episodes" / "ep-00003.gif"
    frames = [Image.new("RGB", (32, 24), color) for color in ("red", "blue")]
    frames[0].save(beside, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "out"
    made = out / "clips" / "rnd-at-b" / "episodes" / "ep-00005.mp4"
    made.parent.mkdir(parents=True)
    made.write_bytes(b"\0")
    ok = root / "pa-at-a" / "episodes" / "ep-00000.gif"  # a success: not shown
    shutil.copy(beside, ok)
    assert find_clip(root, "rnd-at-b/episodes/ep-00003.npz", out) == (
        "../c/rnd-at-b/episodes/ep-00003.gif"
    )
    assert find_clip(root, "rnd-at-b/episodes/ep-00005.npz", out) == (
        "clips/rnd-at-b/episodes/ep-00005.mp4"
    )
    assert find_clip(root, "rnd-at-b/episodes/ep-00006.npz", out) is None
    text = write_report(root, out).html.read_text()
    assert '<img src="../c/rnd-at-b/episodes/ep-00003.gif"' in text
    assert '<video src="clips/rnd-at-b/episodes/ep-00005.mp4"' in text
    assert "pa-at-a/episodes/ep-00000.gif" not in text
    assert "[seed 3: " in (out / "report.md").read_text()


def test_campaign_section_shows_the_sweep_and_the_shared_config(written: WrittenReport) -> None:
    text = written.markdown.read_text()
    campaign_part = text[text.index("## Campaign") :]
    assert "sweep axes: site = site-a, site-b; policy = pa, pb, random" in campaign_part
    assert "Shared configuration (campaign.json's config, swept keys left out)" in campaign_part
    assert "episodes: 10" in campaign_part


def _trial(config: dict[str, object]) -> object:
    from testbed.campaign.trial_status import TrialStatus

    return TrialStatus("t", "t", "done", info={"config": config})


def test_shared_config_is_what_every_trial_agrees_on() -> None:
    trials = [
        _trial({"site": {"id": s}, "seed": 0, "policy": {"name": p, "deadline_ms": 50}})
        for s in ("a", "b")
        for p in ("x", "y")
    ]
    launching = {"config": {"site": {"id": "a"}}, "sweep": {"site": "a,b", "policy": "x,y"}}
    shared, differing, source = shared_config(launching, trials)  # type: ignore[arg-type]
    assert shared == {"seed": "0", "policy.deadline_ms": "50"}
    assert differing == {"site.id": ["a", "b"], "policy.name": ["x", "y"]}
    assert source == "every one of the 4 trials' configs"
    assert sweep_axes(launching) == {"site": ["a", "b"], "policy": ["x", "y"]}
    assert sweep_axes({"overrides": ["+campaign=x", "seed=0,1"]}) == {"seed": ["0", "1"]}


def test_method_describes_the_iqm_only_when_the_report_shows_one(tmp_path: Path) -> None:
    without = write_report(_seeded(tmp_path / "one", [None]), tmp_path / "r1").markdown
    assert "IQM" not in without.read_text()
    shown = write_report(_seeded(tmp_path / "two", [0, 1, 2]), tmp_path / "r2").markdown
    text = shown.read_text()
    assert "IQM of per-seed success across training seeds" in text
    assert "IQM: scipy.stats.trim_mean" in text[text.index("## Method") :]
    # the summary says which sites the pooled IQM covers (here: only the home site)
    assert "- IQM across training seeds, p, at site-a: " in text


def _seeded(root: Path, policy_seeds: list[int | None]) -> Path:
    for policy_seed in policy_seeds:
        trial = f"p-s{policy_seed}"
        for seed in range(4):
            record = _record(trial, "p", "site-a", "site-a", seed, seed < 2)
            meta = dataclasses.replace(record.meta, policy_seed=policy_seed)
            write_record(record_path(root / trial, seed), dataclasses.replace(record, meta=meta))
        info = _trial_json(trial, "p", "site-a", "site-a", list(range(4)))
        (root / trial / "trial.json").write_text(json.dumps(info))
    return root


def test_the_page_is_readable_on_a_phone(written: WrittenReport) -> None:
    text = written.html.read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    tables = text.count("<table")
    assert tables > 0 and text.count('<div class="scroll"><table') == tables
    # the KPI, compliance and energy tables and one per cell
    assert text.count('<table class="filterable">') == 3 + len(written.matrix.cells)
    figures = text.count('<img src="data:image/png;base64,')
    assert figures >= 3 and text.count('<div class="scroll figure"><img') == figures


def test_report_films_the_end_of_each_failed_episode(tmp_path: Path) -> None:
    """A real record cut at 200 steps (parts left: a failure): its last second, as a GIF."""
    import imageio.v3 as iio
    from typer.testing import CliRunner

    from testbed.cli import app
    from tests.testbed.recording import cached_episode, write_episode

    record = cached_episode("kr-changwon")
    root, out = tmp_path / "c", tmp_path / "out"
    write_episode(root, record)
    written = write_report(root, out, clip_seconds=1.0)
    cell = written.matrix.cell(record.meta.policy, "kr-changwon")
    assert cell is not None and cell.successes == 0
    clip = out / "clips" / record.meta.trial / "episodes" / "ep-00000.gif"
    frames = iio.imread(clip, index=None)
    # 1 s at 10 frames/s, then the end card (one GIF frame held for 1.5 s)
    assert frames.shape[:3] == (11 + 1, 240, 320)
    assert frames[-1].mean() < 60 and frames[-1][..., 0].max() > 200  # dark, "FAILED" in red
    with Image.open(clip) as gif:
        held = [gif.info["duration"] for _ in ImageSequence.Iterator(gif)]
    assert held[-1] == pytest.approx(1500, abs=20) and sum(held) == pytest.approx(2600, abs=60)
    sidecar = json.loads(clip.with_name(clip.name + ".json").read_text())
    assert (sidecar["from_step"], sidecar["to_step"], sidecar["verified"]) == (170, 200, True)
    assert f'<img src="clips/{record.meta.trial}/episodes/ep-00000.gif"' in written.html.read_text()
    made = clip.stat().st_mtime_ns
    result = CliRunner().invoke(app, ["report", str(root), "--out", str(out), "--clips", "1"])
    assert result.exit_code == 0, result.output
    assert clip.stat().st_mtime_ns == made  # newer than its record: kept
