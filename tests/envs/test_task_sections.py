"""site.yaml's ``tasks:`` list: one section per task, keyed on ``kind``, with clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envs.errors import FactoryDataError
from envs.factory.task_sections import ConveyorSortSection, TouchPartSection
from envs.sites import SITE_DATA, load_site
from envs.touch_part import TouchPartEnv

TASKS_BLOCK = "tasks:\n- kind: conveyor-sort\n  parts_per_episode: 3\n  time_limit_s: 35.0\n"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "kr-changwon"
    shutil.copytree(SITE_DATA / "kr-changwon", folder)
    return folder


def with_tasks(folder: Path, block: str) -> Path:
    """Replace the whole ``tasks:`` list (site.yaml's last key) with ``block``."""
    site_yaml = folder / "site.yaml"
    text = site_yaml.read_text()
    assert TASKS_BLOCK in text
    site_yaml.write_text(text[: text.index(TASKS_BLOCK)] + block)
    return folder


def errors(folder: Path) -> str:
    with pytest.raises(FactoryDataError) as caught:
        load_site(folder)
    return str(caught.value)


def test_each_task_reads_its_own_section(bundle: Path) -> None:
    with_tasks(bundle, TASKS_BLOCK + "- kind: touch-part\n  time_limit_s: 5\n")
    site = load_site(bundle).site
    assert site.task_section(ConveyorSortSection).time_limit_s == 35.0
    assert site.task_section(TouchPartSection) == TouchPartSection(time_limit_s=5.0)


def test_a_site_without_tasks_runs_every_task_on_its_defaults(bundle: Path) -> None:
    bare = load_site(with_tasks(bundle, "")).site
    assert bare.tasks == ()
    assert bare.task_section(ConveyorSortSection) == ConveyorSortSection()


def test_touch_part_env_takes_its_section_unless_given_arguments(bundle: Path) -> None:
    block = TASKS_BLOCK + "- kind: touch-part\n  time_limit_s: 5\n  success_radius_m: 0.03\n"
    site = load_site(with_tasks(bundle, block))
    env = TouchPartEnv(site)
    assert (env.task.time_limit_s(), env.success_radius_m) == (5.0, 0.03)
    env.close()
    env = TouchPartEnv(site, time_limit_s=2.0)
    assert (env.task.time_limit_s(), env.success_radius_m) == (2.0, 0.03)
    env.close()


def test_an_unknown_kind_names_the_item_and_the_known_kinds(bundle: Path) -> None:
    text = errors(with_tasks(bundle, "tasks:\n- kind: welding\n"))
    assert "tasks[0].kind" in text and "'welding'" in text
    assert "conveyor-sort" in text and "touch-part" in text


def test_a_bad_value_names_the_item_without_pydantics_tag(bundle: Path) -> None:
    text = errors(with_tasks(bundle, "tasks:\n- kind: conveyor-sort\n  time_limit_s: -1\n"))
    assert "tasks[0].time_limit_s" in text and "conveyor-sort.time_limit_s" not in text
    assert "greater than 0" in text


def test_an_unknown_key_suggests_the_sections_own_keys(bundle: Path) -> None:
    text = errors(with_tasks(bundle, "tasks:\n- kind: touch-part\n  succes_radius_m: 0.1\n"))
    assert "tasks[0].succes_radius_m" in text and "did you mean 'success_radius_m'" in text


def test_a_kind_listed_twice_is_refused(bundle: Path) -> None:
    text = errors(with_tasks(bundle, TASKS_BLOCK + "- kind: conveyor-sort\n"))
    assert "one section per task kind" in text and "conveyor-sort twice" in text


def test_the_old_single_task_section_says_how_to_write_the_new_one(bundle: Path) -> None:
    old = "task:\n  parts_per_episode: 3\n  time_limit_s: 35.0\n"
    text = errors(with_tasks(bundle, old))
    assert "tasks: [{kind: conveyor-sort" in text
