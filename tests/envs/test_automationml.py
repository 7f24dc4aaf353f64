"""AutomationML import and export: round trips in CAEX 3.0 and 2.15, the shipped .aml site
against its CSV form, and the bundle checks applied to an imported layout."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from lxml import etree

import envs  # noqa: F401  (registers the env ids)
from envs.errors import FactoryDataError
from envs.factory.automationml import export_aml, import_aml
from envs.factory.automationml._schema import SCHEMA_DIR, schema_issues
from envs.factory.automationml._xml import CAEX3_NS, parse_caex
from envs.factory.loader import check_bundle, load_bundle
from envs.sites import SITE_DATA

REPO = Path(__file__).resolve().parents[2]
SHIPPED = SITE_DATA / "kr-changwon.aml"
STAMP = "2025-01-01T00:00:00+00:00"


def test_vendored_schemas_are_the_upstream_files() -> None:
    pinned = {
        "CAEX_ClassModel_V.3.0.xsd": "ba02dbd45fe1358421640f781e79bcb4"
        "9a9da11c867b416f18a9ab392d42bf19",
        "CAEX_ClassModel_V2.15.xsd": "742f7ada0ae2b362127f7e9b142b8b1c"
        "27d1a7a0f5a5a8ec28f244a17bc36a68",
    }
    for name, digest in pinned.items():
        assert hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest() == digest
        assert digest in (SCHEMA_DIR / "VENDOR.md").read_text()


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize(("site", "version"), [("us-austin", "3.0"), ("jp-nagoya", "2.15")])
def test_import_export_import_gives_the_same_bundle(
    tmp_path: Path, site: str, version: str
) -> None:
    first = tmp_path / "a" / f"{site}.aml"
    export_aml(SITE_DATA / site, first, version=version, written_at=STAMP)
    document = parse_caex(first.read_bytes(), first.name)
    assert document.version == version
    assert schema_issues(document) == []
    imported = import_aml(first, tmp_path / "one")
    export_aml(tmp_path / "one", tmp_path / "b" / "again.aml", version=version)
    import_aml(tmp_path / "b" / "again.aml", tmp_path / "two")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    # ...and it is the CSV bundle's site, field for field.
    original, spec = load_bundle(SITE_DATA / site), imported.check.raise_errors()
    assert spec.stations == original.stations
    assert spec.parts == original.parts
    assert spec.site == original.site
    assert spec.arrivals == original.arrivals


def _import_shipped(out: Path) -> Path:
    csv_form = SITE_DATA / "kr-changwon"
    import_aml(SHIPPED, out, settings=csv_form / "site.yaml", arrivals=csv_form / "arrivals.csv")
    return out


def test_shipped_aml_and_csv_forms_build_the_same_cell(tmp_path: Path) -> None:
    folder = _import_shipped(tmp_path / "from-aml")
    from_aml, from_csv = load_bundle(folder), load_bundle(SITE_DATA / "kr-changwon")
    assert from_aml.stations == from_csv.stations
    assert from_aml.parts == from_csv.parts
    assert from_aml.site == from_csv.site
    assert from_aml.arrival_process == from_csv.arrival_process
    observations = []
    for site in (str(folder), "kr-changwon"):
        env = gym.make("Testbed/ConveyorSort-v0", site=site)
        try:
            obs, _ = env.reset(seed=7)
            for _ in range(5):
                obs, *_ = env.step(np.full(env.action_space.shape, 0.3, dtype=np.float32))
            observations.append(obs)
        finally:
            env.close()
    first, second = observations
    assert first.keys() == second.keys() if isinstance(first, dict) else True
    flat = [
        np.concatenate([np.ravel(v) for v in o.values()]) if isinstance(o, dict) else o
        for o in observations
    ]
    np.testing.assert_array_equal(flat[0], flat[1])


def _edit_shipped(tmp_path: Path, station: str, axis: str, value: str) -> Path:
    root = etree.fromstring(SHIPPED.read_bytes())
    ns = {"c": CAEX3_NS}
    (node,) = root.xpath(
        f"//c:InternalElement[@Name='{station}']/c:Attribute[@Name='Frame']"
        f"/c:Attribute[@Name='{axis}']/c:Value",
        namespaces=ns,
    )
    node.text = value
    path = tmp_path / "plant.aml"
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path


def test_an_infeasible_imported_layout_gets_the_csv_bundles_messages(tmp_path: Path) -> None:
    # The belt 3 m away: the same finding as for the CSV bundle with that row.
    aml = _edit_shipped(tmp_path, "conv1", "y", "3.0")
    csv_form = tmp_path / "csv"
    csv_form.mkdir()
    for name in ("site.yaml", "parts.csv", "arrivals.csv"):
        (csv_form / name).write_bytes((SITE_DATA / "kr-changwon" / name).read_bytes())
    stations = (SITE_DATA / "kr-changwon" / "stations.csv").read_text()
    (csv_form / "stations.csv").write_text(
        stations.replace("conv1,conveyor,,0.0,0.42,", "conv1,conveyor,,0.0,3.0,")
    )
    expected = [str(issue) for issue in check_bundle(csv_form).errors]
    assert expected and any("conv1" in line for line in expected)
    with pytest.raises(FactoryDataError) as caught:
        import_aml(
            aml,
            tmp_path / "out",
            settings=csv_form / "site.yaml",
            arrivals=csv_form / "arrivals.csv",
        )
    got = [
        re.sub(r" \[plant\.aml: line \d+, \S+\]", "", str(issue)) for issue in caught.value.issues
    ]
    assert got == expected
    assert "[plant.aml: line " in str(caught.value)  # each row names the element it came from
    assert not (tmp_path / "out").exists()


def test_a_value_out_of_range_is_the_loaders_error_at_its_element(tmp_path: Path) -> None:
    aml = _edit_shipped(tmp_path, "bin1", "x", "250")
    csv_form = SITE_DATA / "kr-changwon"
    with pytest.raises(
        FactoryDataError,
        match=r"stations.csv: row 3 \(line 4\), column x \[plant.aml: line \d+, "
        r"/CAEXFile/InstanceHierarchy\[@Name='kr-changwon'\]/InternalElement\[@Name='bin1'\]\]",
    ):
        import_aml(aml, None, settings=csv_form / "site.yaml", arrivals=csv_form / "arrivals.csv")


def test_side_files_must_agree_and_exist(tmp_path: Path) -> None:
    settings = tmp_path / "site.yaml"
    settings.write_text(
        (SITE_DATA / "kr-changwon" / "site.yaml")
        .read_text()
        .replace("model: panda", "model: xarm6")
    )
    with pytest.raises(FactoryDataError) as caught:
        import_aml(SHIPPED, None, settings=settings, arrivals=tmp_path / "missing.csv")
    text = str(caught.value)
    assert (
        "site.yaml: robot.model: expected 'panda' as kr-changwon.aml says "
        "(or leave the key out) (got 'xarm6')" in text
    )
    assert "arrivals.csv: expected a production log (CAEX carries none)" in text


def test_unknown_roles_can_be_skipped_and_are_listed(tmp_path: Path) -> None:
    root = etree.fromstring(SHIPPED.read_bytes())
    (role,) = root.xpath(
        "//c:InternalElement[@Name='cam1']/c:RoleRequirements", namespaces={"c": CAEX3_NS}
    )
    role.set("RefBaseRoleClassPath", "VendorLib/ThermalCamera")
    aml = tmp_path / "plant.aml"
    aml.write_bytes(etree.tostring(root))
    csv_form = SITE_DATA / "kr-changwon"
    result = import_aml(
        aml,
        None,
        settings=csv_form / "site.yaml",
        arrivals=csv_form / "arrivals.csv",
        skip_unknown=True,
    )
    assert [issue.value for issue in result.skipped] == ["'VendorLib/ThermalCamera'"]
    assert "cam1" not in {s.station_id for s in result.check.raise_errors().stations}


def test_a_role_derived_in_the_file_resolves_to_its_base(tmp_path: Path) -> None:
    root = etree.fromstring(SHIPPED.read_bytes())
    ns = {"c": CAEX3_NS}
    (lib,) = root.xpath("//c:RoleClassLib", namespaces=ns)
    vendor = etree.SubElement(root, f"{{{CAEX3_NS}}}RoleClassLib", Name="VendorLib")
    lib.addnext(vendor)
    etree.SubElement(
        vendor,
        f"{{{CAEX3_NS}}}RoleClass",
        Name="SmartBin",
        RefBaseClassPath="TestbedRoleClassLib/Bin",
    )
    (role,) = root.xpath("//c:InternalElement[@Name='bin2']/c:RoleRequirements", namespaces=ns)
    role.set("RefBaseRoleClassPath", "VendorLib/SmartBin")
    aml = tmp_path / "plant.aml"
    aml.write_bytes(etree.tostring(root))
    csv_form = SITE_DATA / "kr-changwon"
    result = import_aml(
        aml, None, settings=csv_form / "site.yaml", arrivals=csv_form / "arrivals.csv"
    )
    assert result.check.raise_errors().stations == load_bundle(csv_form).stations


def _doc_blocks(language: str) -> list[str]:
    text = (REPO / "docs" / "automationml.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_docs_minimal_example_imports(tmp_path: Path) -> None:
    (xml,) = _doc_blocks("xml")
    (settings,) = _doc_blocks("yaml")
    (log,) = _doc_blocks("csv")
    (tmp_path / "demo.aml").write_text(xml)
    (tmp_path / "demo.settings.yaml").write_text(settings)
    (tmp_path / "demo.arrivals.csv").write_text(log)
    spec = import_aml(tmp_path / "demo.aml", tmp_path / "demo").check.raise_errors()
    assert [(s.station_id, s.kind, s.parent_id) for s in spec.stations] == [
        ("robot1", "robot", None),
        ("conv1", "conveyor", None),
        ("rack", "table", None),
        ("bin1", "bin", "rack"),
    ]
    assert spec.site.robot.model == "panda" and spec.site_id == "demo"
    assert [p.part_id for p in spec.parts] == ["BOX-1", "CYL-1"]


def test_a_role_in_an_external_library_is_read_through_its_alias(tmp_path: Path) -> None:
    root = etree.fromstring(SHIPPED.read_bytes())
    path = "//c:InternalElement[@Name='robot1']/c:RoleRequirements"
    (role,) = root.xpath(path, namespaces={"c": CAEX3_NS})
    role.set("RefBaseRoleClassPath", "ExtLib@AutomationMLExtendedRoleClassLib/Robot")
    aml = tmp_path / "plant.aml"
    aml.write_bytes(etree.tostring(root))
    csv_form = SITE_DATA / "kr-changwon"
    result = import_aml(
        aml, None, settings=csv_form / "site.yaml", arrivals=csv_form / "arrivals.csv"
    )
    assert result.check.raise_errors().stations == load_bundle(csv_form).stations
