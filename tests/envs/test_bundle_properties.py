"""Property tests: generated factory bundles never crash or hang the loader.

Every rejection is a `FactoryDataError` whose issues name the file, the row or key, and what was
expected; every accepted bundle is a `SiteSpec`, and (on a bounded sample, since building a
PyBullet cell costs ~0.1 s) builds a cell that steps with finite observations. Layouts the task
cannot work in (`LAYOUT_DEFECTS`) are rejected naming the station and the remedy, and
``gym.make`` agrees with the check (`check_bundle`, what ``testbed sites check`` runs) on every
bundle it is tried on: it raises the same findings, or builds a cell that steps.

Bundles stay in memory (`load_snapshot`). Example counts scale with the Hypothesis profile
(``tests/conftest.py``): the ``ci`` profile tries 10,000+ bundles, ``nightly`` ten times more.
The count actually tried is printed at the end of the module and asserted there.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.errors import DataIssue, FactoryDataError
from envs.factory.loader import check_bundle, load_snapshot
from envs.factory.schema import SiteSpec

from .bundle_defects import BYTE_DEFECTS, DEFECTS, DESTRUCTIVE, LAYOUT_DEFECTS, benign, junk_file
from .bundle_strategies import FILES, Draft, Expect, valid_drafts

ROOT = Path("/nonexistent/generated-bundle")  # in memory: nothing is read from here
SCALE = settings().max_examples / 100  # 1 under the ci profile, 10 under nightly
COUNTS = {
    "valid": 1500,
    "one_defect": 3500,
    "combined": 3500,
    "arbitrary": 1600,
    "layout": 600,
    "build": 25,
    "agree": 30,
}
HANG_S = 5.0  # CPU seconds: one bundle is ~1 ms; anything near this is a hang (CPU time,
# so that a busy machine that leaves this process waiting is not taken for a hang)
TRIED: Counter[str] = Counter()


def examples(kind: str) -> int:
    return max(1, round(COUNTS[kind] * SCALE))


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    TRIED.clear()
    yield
    line = (
        f"factory bundles tried: {TRIED['tried']} (accepted {TRIED['accepted']}, rejected "
        f"{TRIED['rejected']}); cells built and stepped: {TRIED['built']}"
    )
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")
    ran = {item.originalname for item in request.session.items if item.module is request.module}
    if ran >= {f.__name__ for f in PROPERTIES}:  # the whole module ran: the budget was met
        assert TRIED["tried"] >= sum(examples(k) for k in COUNTS if k != "build"), line


def load(files: dict[str, bytes]) -> SiteSpec | tuple[DataIssue, ...]:
    """Load in memory; check the rejection is well formed and the load did not hang."""
    TRIED["tried"] += 1
    start = time.process_time()
    try:
        spec = load_snapshot(ROOT, files)
    except FactoryDataError as error:
        TRIED["rejected"] += 1
        assert time.process_time() - start < HANG_S
        assert error.issues, "a FactoryDataError must carry issues"
        for issue in error.issues:
            assert_well_formed(issue, files)
        return error.issues
    assert time.process_time() - start < HANG_S
    TRIED["accepted"] += 1
    return spec


def assert_well_formed(issue: DataIssue, files: dict[str, bytes]) -> None:
    """Names a bundle file, where in it (or it is about the whole file), and what was expected."""
    assert issue.file in FILES, issue
    assert issue.expected.strip(), issue
    whole_file = issue.value.startswith("missing") or issue.value == "an empty file"
    assert issue.location.strip() or whole_file, f"no row or key: {issue}"
    if issue.location.startswith("row "):
        assert ", column " in issue.location or "(line " in issue.location, issue
    assert len(str(issue)) < 2000, "issues stay readable"


def rejected_with(result: SiteSpec | tuple[DataIssue, ...], expect: Expect) -> None:
    assert not isinstance(result, SiteSpec), f"accepted a bundle with {expect}"
    text = "\n".join(map(str, result))
    assert any(expect.met_by(i) for i in result), f"{expect} not among:\n{text}"


@st.composite
def defective(draw: st.DrawFn, max_defects: int) -> tuple[dict[str, bytes], list[Expect], bool]:
    """A valid draft with 1..max_defects defects; the expectations; whether any was destructive.

    With one defect only the ones with a definite expectation are drawn (no cuts, scrambles or
    harmless changes).
    """
    draft: Draft = draw(valid_drafts())
    extra = (*BYTE_DEFECTS, benign) if max_defects > 1 else (
        tuple(d for d in BYTE_DEFECTS if d not in DESTRUCTIVE))  # fmt: skip
    chosen = draw(st.lists(st.sampled_from((*DEFECTS, *extra)), min_size=1, max_size=max_defects))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    found = [defect(rng, draft) for defect in chosen if defect in DEFECTS]
    files = draft.files()
    found += [defect(rng, files) for defect in chosen if defect not in DEFECTS]  # type: ignore[arg-type]
    destructive = any(defect in DESTRUCTIVE for defect in chosen)
    return files, [f for f in found if f is not None], destructive


# ------------------------------------------------------------------------------ properties


@settings(max_examples=examples("valid"))
@given(valid_drafts(), st.none() | st.integers(0, 2**32 - 1))
def test_valid_bundles_load(draft: Draft, benign_seed: int | None) -> None:
    files = draft.files()
    if benign_seed is not None:  # CRLF line ends, a BOM, blank lines, an unrelated asset
        benign(random.Random(benign_seed), files)
    spec = load(files)
    assert isinstance(spec, SiteSpec), "\n".join(map(str, spec))
    assert len(spec.stations) == len(draft.stations) and len(spec.parts) == len(draft.parts)
    assert {p.part_id for p in spec.parts} == {spec.part(p.part_id).part_id for p in spec.parts}
    assert abs(sum(spec.arrival_process.part_shares.values()) - 1.0) < 1e-9
    assert all(gap > 0 for gap in spec.arrival_process.inter_arrival_s)


@settings(max_examples=examples("one_defect"))
@given(defective(max_defects=1))
def test_a_defect_is_named_with_file_row_and_expectation(
    case: tuple[dict[str, bytes], list[Expect], bool],
) -> None:
    files, expects, _ = case
    result = load(files)
    for expect in expects:
        rejected_with(result, expect)


@settings(max_examples=examples("combined"))
@given(defective(max_defects=6))
def test_combined_defects_never_crash_and_name_each_broken_file(
    case: tuple[dict[str, bytes], list[Expect], bool],
) -> None:
    files, expects, destructive = case
    result = load(files)
    if destructive:  # a cut or scrambled file may have lost the defect, or still be valid
        return
    for expect in expects:
        if expect.local:
            assert not isinstance(result, SiteSpec), f"accepted a bundle with {expect}"
            assert any(i.file == expect.file for i in result), f"{expect.file} not named"


@settings(max_examples=examples("arbitrary"))
@given(st.sets(st.sampled_from(FILES)), st.integers(0, 2**32 - 1))
def test_arbitrary_bytes_are_rejected_cleanly(names: set[str], seed: int) -> None:
    rng = random.Random(seed)
    result = load({name: junk_file(rng) for name in sorted(names)})
    assert not isinstance(result, SiteSpec)


@st.composite
def bad_layouts(draw: st.DrawFn) -> tuple[Draft, Expect]:
    """A valid draft with one layout defect, and the finding it must raise."""
    draft = draw(valid_drafts())
    defect = draw(st.sampled_from(LAYOUT_DEFECTS))
    expect = defect(random.Random(draw(st.integers(0, 2**32 - 1))), draft)
    assert expect is not None
    return draft, expect


@settings(max_examples=examples("layout"))
@given(bad_layouts())
def test_a_layout_the_task_cannot_use_is_named_with_its_remedy(case: tuple[Draft, Expect]) -> None:
    draft, expect = case
    rejected_with(load(draft.files()), expect)


@st.composite
def any_layouts(draw: st.DrawFn) -> Draft:
    """A valid draft, or (as often) one with a layout defect."""
    return draw(bad_layouts())[0] if draw(st.booleans()) else draw(valid_drafts())


@settings(max_examples=examples("agree"))
@given(any_layouts(), st.integers(0, 2**16))
def test_check_and_gym_make_agree(draft: Draft, seed: int) -> None:
    import gymnasium as gym

    import envs  # noqa: F401  (registers the env ids)

    TRIED["tried"] += 1
    with tempfile.TemporaryDirectory(prefix="testbed-bundle-") as folder:
        for name, data in draft.files().items():
            (Path(folder) / name).write_bytes(data)
        check = check_bundle(folder)
        if check.errors:
            TRIED["rejected"] += 1
            with pytest.raises(FactoryDataError) as raised:
                gym.make("Testbed/ConveyorSort-v0", site=folder)
            assert raised.value.issues == check.errors
            return
        TRIED["accepted"] += 1
        env = gym.make("Testbed/ConveyorSort-v0", site=folder)
        try:
            env.reset(seed=seed)
            rng = np.random.default_rng(seed)
            for _ in range(8):
                observation, reward, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
                assert np.isfinite(reward)
                assert all(np.all(np.isfinite(v)) for v in observation.values())
        finally:
            env.close()
    TRIED["built"] += 1


@pytest.fixture(scope="module")
def conveyor_sort() -> type:
    from envs.conveyor_sort import ConveyorSortEnv

    return ConveyorSortEnv


@settings(max_examples=examples("build"))
@given(draft=valid_drafts(), seed=st.integers(0, 2**16))
def test_accepted_bundles_build_a_cell_that_steps(
    conveyor_sort: type, draft: Draft, seed: int
) -> None:
    spec = load(draft.files())
    assert isinstance(spec, SiteSpec), "\n".join(map(str, spec))
    env = conveyor_sort(site=spec)
    try:
        observation, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(8):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            observation, reward, *_ = env.step(action)
            assert np.isfinite(reward)
            assert all(np.all(np.isfinite(v)) for v in observation.values())
    finally:
        env.close()
    TRIED["built"] += 1


PROPERTIES = (
    test_valid_bundles_load,
    test_a_defect_is_named_with_file_row_and_expectation,
    test_combined_defects_never_crash_and_name_each_broken_file,
    test_arbitrary_bytes_are_rejected_cleanly,
    test_a_layout_the_task_cannot_use_is_named_with_its_remedy,
    test_check_and_gym_make_agree,
    test_accepted_bundles_build_a_cell_that_steps,
)
