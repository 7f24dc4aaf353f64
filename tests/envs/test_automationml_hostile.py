"""Malformed and hostile CAEX files: each refused with one clear issue, never a crash or a hang.

Every file is made here, in ``tmp_path``, from the shipped ``kr-changwon.aml`` or from scratch;
the 50 MB one is a sparse file, refused by its size before it is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from envs.errors import FactoryDataError
from envs.factory.automationml import import_aml
from envs.factory.automationml._xml import CAEX3_NS, MAX_AML_BYTES
from envs.sites import SITE_DATA

SHIPPED = SITE_DATA / "kr-changwon.aml"
NS = {"c": CAEX3_NS}
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _edit(change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(SHIPPED.read_bytes())
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _station(root: etree._Element, name: str) -> etree._Element:
    return root.xpath(f"//c:InternalElement[@Name='{name}']", namespaces=NS)[0]


def _frame_axis(root: etree._Element, station: str, axis: str) -> etree._Element:
    frame = _station(root, station).find(f"{{{CAEX3_NS}}}Attribute[@Name='Frame']")
    return frame.find(f"{{{CAEX3_NS}}}Attribute[@Name='{axis}']")


def _drop(element: etree._Element) -> None:
    parent = element.getparent()
    assert parent is not None
    parent.remove(element)


def _set_value(root: etree._Element, station: str, axis: str, text: str) -> None:
    _frame_axis(root, station, axis).find(f"{{{CAEX3_NS}}}Value").text = text


def _doctype(subset: str) -> bytes:
    body = SHIPPED.read_bytes().split(b"?>", 1)[1]
    return HEAD + f"<!DOCTYPE CAEXFile [{subset}]>".encode() + body


BILLION_LAUGHS = "".join(
    [' <!ENTITY lol "lol">']
    + [
        f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    ]
)


def _billion_laughs() -> bytes:
    data = _doctype(BILLION_LAUGHS)
    return data.replace(b"<Description>Changwon", b"<Description>&lol9;Changwon", 1)


def _external_entity(url: str) -> bytes:
    data = _doctype(f'<!ENTITY xxe SYSTEM "{url}">')
    return data.replace(b"<Description>Changwon", b"<Description>&xxe;Changwon", 1)


def _deep(levels: int) -> bytes:
    opening = "".join(f'<InternalElement Name="e{i}">' for i in range(levels))
    closing = "</InternalElement>" * levels
    return (
        HEAD
        + (
            f'<CAEXFile xmlns="{CAEX3_NS}" SchemaVersion="3.0" FileName="d.aml">'
            f'<InstanceHierarchy Name="d">{opening}{closing}</InstanceHierarchy></CAEXFile>'
        ).encode()
    )


def _second_hierarchy(root: etree._Element) -> None:
    first = root.find(f"{{{CAEX3_NS}}}InstanceHierarchy")
    copy = etree.fromstring(etree.tostring(first))
    copy.set("Name", "other")
    for element in copy.iter():
        if element.get("ID"):
            element.set("ID", "copy-" + element.get("ID"))
    first.addnext(copy)


def _unknown_role(root: etree._Element) -> None:
    role = _station(root, "cam1").find(f"{{{CAEX3_NS}}}RoleRequirements")
    role.set("RefBaseRoleClassPath", "AutomationMLExtendedRoleClassLib/Turntable")


def _bogus_child(root: etree._Element) -> None:
    etree.SubElement(_station(root, "bin1"), f"{{{CAEX3_NS}}}Bogus")


def _xinclude(root: etree._Element) -> None:
    include = etree.SubElement(_station(root, "bin1"), "{http://www.w3.org/2001/XInclude}include")
    include.set("href", "file:///etc/passwd")


# (id, the file's bytes, what the message must say, whether it names a line)
CASES: list[tuple[str, Callable[[], bytes], str, bool]] = [
    ("billion-laughs", _billion_laughs, "no DOCTYPE", True),
    ("external-entity-file", lambda: _external_entity("file:///etc/passwd"), "no DOCTYPE", True),
    ("external-entity-http", lambda: _external_entity("http://127.0.0.1:9/x"), "no DOCTYPE", True),
    (
        "external-dtd",
        lambda: (
            HEAD
            + b'<!DOCTYPE CAEXFile SYSTEM "http://127.0.0.1:9/caex.dtd">'
            + SHIPPED.read_bytes().split(b"?>", 1)[1]
        ),
        "no DOCTYPE",
        True,
    ),
    (
        "utf16-billion-laughs",
        lambda: (
            _billion_laughs()
            .replace(b'encoding="UTF-8"', b'encoding="UTF-16"')
            .decode()
            .encode("utf-16")
        ),
        "no DOCTYPE",
        True,
    ),
    (
        "wrong-namespace",
        lambda: SHIPPED.read_bytes().replace(
            b'xmlns="http://www.dke.de/CAEX"', b'xmlns="http://example.com/not-caex"'
        ),
        "root element CAEXFile in namespace 'http://www.dke.de/CAEX'",
        True,
    ),
    ("wrong-root", lambda: HEAD + b"<html><body/></html>", "root element CAEXFile", True),
    (
        "version-mismatch",
        lambda: SHIPPED.read_bytes().replace(b'SchemaVersion="3.0"', b'SchemaVersion="2.15"', 1),
        "SchemaVersion '3.0'",
        True,
    ),
    (
        "missing-frame",
        lambda: _edit(
            lambda r: _drop(_station(r, "bin2").find(f"{{{CAEX3_NS}}}Attribute[@Name='Frame']"))
        ),
        "InternalElement[@Name='bin2']: expected an Attribute Frame",
        True,
    ),
    (
        "frame-without-z",
        lambda: _edit(lambda r: _drop(_frame_axis(r, "conv1", "z"))),
        "expected an Attribute z (m) in the Frame",
        True,
    ),
    (
        "duplicate-ids",
        lambda: _edit(lambda r: _station(r, "bin2").set("ID", _station(r, "bin1").get("ID"))),
        "expected a unique ID (also at line",
        True,
    ),
    (
        "duplicate-names",
        lambda: _edit(lambda r: _station(r, "bin2").set("Name", "bin1")),
        "expected a unique station Name",
        True,
    ),
    (
        "not-a-number",
        lambda: _edit(lambda r: _set_value(r, "bin1", "x", "0,42")),
        "attribute Value: expected a finite number (got '0,42')",
        True,
    ),
    (
        "nan",
        lambda: _edit(lambda r: _set_value(r, "bin1", "y", "NaN")),
        "expected a finite number (got 'NaN')",
        True,
    ),
    (
        "millimetres",
        lambda: _edit(lambda r: _frame_axis(r, "conv1", "x").set("Unit", "mm")),
        "attribute Unit: expected Unit 'm'",
        True,
    ),
    ("unknown-role", lambda: _edit(_unknown_role), "Turntable", True),
    (
        "not-well-formed",
        lambda: SHIPPED.read_bytes().replace(b"</InstanceHierarchy>", b"", 1),
        "expected well-formed XML",
        True,
    ),
    (
        "undefined-entity",
        lambda: SHIPPED.read_bytes().replace(
            b"<Description>Changwon", b"<Description>&nope;Changwon", 1
        ),
        "well-formed XML",
        True,
    ),
    ("empty", lambda: b"", "expected a CAEX XML document", False),
    ("deep-nesting", lambda: _deep(2000), "Excessive depth", True),  # libxml2's own limit
    ("nesting-over-our-limit", lambda: _deep(100), "expected at most 64 nested elements", True),
    ("schema-violation", lambda: _edit(_bogus_child), "valid CAEX 3.0", True),
    ("xinclude", lambda: _edit(_xinclude), "valid CAEX 3.0", True),
    (
        "processing-instruction",
        lambda: SHIPPED.read_bytes().replace(
            b"<CAEXFile", b'<?xml-stylesheet href="http://127.0.0.1:9/x.xsl"?>\n<CAEXFile', 1
        ),
        "no processing instructions",
        True,
    ),
    ("two-hierarchies", lambda: _edit(_second_hierarchy), "choose one with --hierarchy", True),
]


@pytest.mark.parametrize(
    ("make", "message", "has_line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_file_is_refused_with_a_clear_message(
    tmp_path: Path, make: Callable[[], bytes], message: str, has_line: bool
) -> None:
    path = tmp_path / "plant.aml"
    path.write_bytes(make())
    started = time.perf_counter()
    with pytest.raises(FactoryDataError) as caught:
        import_aml(path, tmp_path / "out", settings=tmp_path / "none.yaml")
    assert time.perf_counter() - started < 5.0
    text = str(caught.value)
    assert message in text, text
    assert "plant.aml" in text
    if has_line:
        assert "line " in text, text
    assert not (tmp_path / "out").exists()  # nothing written


def test_fifty_megabytes_are_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.aml"
    with path.open("wb") as handle:
        handle.write(HEAD + b'<CAEXFile xmlns="http://www.dke.de/CAEX">')
        handle.truncate(50 * 1024 * 1024)  # sparse: made in no time
    started = time.perf_counter()
    with pytest.raises(FactoryDataError, match=f"more than {MAX_AML_BYTES // 2**20} MiB"):
        import_aml(path, tmp_path / "out")
    assert time.perf_counter() - started < 1.0


def test_a_refused_entity_is_never_expanded_or_fetched(tmp_path: Path) -> None:
    """The parser itself (before the DOCTYPE refusal) leaves entities alone: nothing is read."""
    from envs.factory.automationml._xml import _parser

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    data = _external_entity(secret.as_uri())
    root = etree.fromstring(data, _parser())
    assert b"TOP-SECRET" not in etree.tostring(root)
    started = time.perf_counter()
    try:
        root = etree.fromstring(_billion_laughs(), _parser())
    except etree.XMLSyntaxError as error:  # libxml2's own amplification guard
        assert "amplification" in str(error)
    else:
        assert len(etree.tostring(root)) < 2 * len(_billion_laughs())
    assert time.perf_counter() - started < 1.0
