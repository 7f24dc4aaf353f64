"""The packaged sites: they load, differ, match their generator and the documented schema."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from envs.errors import FactoryDataError, UnknownSiteError
from envs.factory import schema
from envs.factory.task_sections import ConveyorSortSection
from envs.sites import SITE_DATA, list_sites, load_site, resolve_site

REPO = Path(__file__).resolve().parents[2]
SITES = ["jp-nagoya", "kr-changwon", "us-austin"]


def test_list_sites() -> None:
    assert list_sites() == SITES


@pytest.mark.parametrize("site_id", SITES)
def test_packaged_site_loads_with_the_shared_layout(site_id: str) -> None:
    spec = load_site(site_id)
    assert spec.site_id == site_id
    assert spec.site.provenance.source == "synthetic"
    assert spec.site.provenance.generator == "scripts/generate_sites.py"
    robot = spec.station(spec.site.robot.station_id)
    assert robot.kind == "robot" and robot.position == (0.0, 0.0, 0.0)
    belt = spec.conveyor
    assert belt.rz == 0.0 and belt.z + belt.size_z / 2 == pytest.approx(0.1)
    assert (belt.conveyor_speed_mps or 0) > 0
    assert all(b.x == 0.42 and b.z == b.size_z / 2 for b in spec.bins)
    assert sorted(spec.bin_index_for(p.part_id) for p in spec.parts) == list(range(len(spec.bins)))
    assert spec.site.task_section(ConveyorSortSection).parts_per_episode == 3
    assert len([a for a in spec.arrivals if a.activity == "arrive"]) == 200


@pytest.mark.parametrize(
    ("site_id", "robot", "speed", "rate", "n_parts", "gap_range"),
    [
        ("kr-changwon", "panda", 0.20, 30, 3, (5.0, 9.0)),
        ("jp-nagoya", "kuka_iiwa", 0.06, 20, 2, (9.0, 14.0)),
        ("us-austin", "xarm6", 0.10, 24, 3, (6.0, 10.0)),
    ],
)
def test_packaged_site_numbers(
    site_id: str,
    robot: str,
    speed: float,
    rate: float,
    n_parts: int,
    gap_range: tuple[float, float],
) -> None:
    spec = load_site(site_id)
    assert spec.site.robot.model == robot
    assert spec.conveyor.conveyor_speed_mps == speed
    assert spec.site.control_rate_hz == rate
    assert len(spec.parts) == len(spec.bins) == n_parts
    gaps = spec.arrival_process.inter_arrival_s
    assert gap_range[0] <= min(gaps) and max(gaps) <= gap_range[1]


def test_sites_are_distinct() -> None:
    specs = [load_site(site_id) for site_id in SITES]
    assert len({s.bundle_hash for s in specs}) == 3
    assert len({s.site.robot.model for s in specs}) == 3
    assert len({s.arrival_process.mean_inter_arrival_s for s in specs}) == 3
    assert load_site("jp-nagoya").site.safety.keep_out_zones
    assert load_site("us-austin").site.sensors.position_noise_m > 0


def test_resolve_site_by_id_and_by_folder(tmp_path: Path) -> None:
    assert resolve_site("kr-changwon") == (SITE_DATA / "kr-changwon").resolve()
    copy = shutil.copytree(SITE_DATA / "us-austin", tmp_path / "my-site")
    assert resolve_site(copy) == copy.resolve()
    assert resolve_site(str(copy)) == copy.resolve()


def test_unknown_site_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownSiteError, match="jp-nagoya, kr-changwon, us-austin"):
        resolve_site("mx-monterrey")
    with pytest.raises(UnknownSiteError):
        load_site(tmp_path / "absent")


def test_load_site_caches_but_never_serves_stale_data(tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(SITE_DATA / "kr-changwon", tmp_path / "b"))
    first = load_site(bundle)
    assert load_site(bundle) is first
    site_yaml = bundle / "site.yaml"
    site_yaml.write_text(site_yaml.read_text().replace("takt_time_s: 6.0", "takt_time_s: 7.0"))
    second = load_site(bundle)
    assert second.site.takt_time_s == 7.0 and second.bundle_hash != first.bundle_hash
    site_yaml.write_text(site_yaml.read_text().replace("takt_time_s: 7.0", "takt_time_s: -1"))
    with pytest.raises(FactoryDataError, match="takt_time_s"):
        load_site(bundle)


def test_generator_reproduces_the_packaged_bundles(tmp_path: Path) -> None:
    script = REPO / "scripts" / "generate_sites.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    packaged = sorted(p.relative_to(SITE_DATA) for p in SITE_DATA.rglob("*") if p.is_file())
    assert generated == packaged
    for relative in generated:
        assert (tmp_path / relative).read_bytes() == (SITE_DATA / relative).read_bytes(), (
            f"{relative} differs: re-run scripts/generate_sites.py and commit the result"
        )


def _yaml_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += _yaml_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_docs_mention_every_key_and_column() -> None:
    docs = (REPO / "docs" / "factory_bundle.md").read_text(encoding="utf-8")
    names = _yaml_keys(schema.SiteFile) + [
        name
        for model in (schema.Station, schema.Part, schema.Arrival, schema.KeepOutZone)
        for name in model.model_fields
    ]
    missing = [name for name in names if f"`{name}`" not in docs]
    assert not missing, f"docs/factory_bundle.md does not document {missing}"


def test_docs_worked_example_loads(tmp_path: Path) -> None:
    docs = (REPO / "docs" / "factory_bundle.md").read_text(encoding="utf-8")
    example = docs.split("## A minimal worked example", 1)[1]
    blocks = re.findall(r"`([a-z]+\.(?:yaml|csv))`.*?```[a-z]*\n(.*?)```", example, re.S)
    assert [name for name, _ in blocks] == [
        "site.yaml",
        "stations.csv",
        "parts.csv",
        "arrivals.csv",
    ]
    for name, body in blocks:
        (tmp_path / name).write_text(body, encoding="utf-8")
    spec = load_site(tmp_path)
    assert spec.arrival_process.inter_arrival_s == (6.5, 5.5)
    assert spec.arrival_process.part_shares == pytest.approx({"BOX-1": 2 / 3, "CYL-1": 1 / 3})
    assert spec.site.substeps == 8
