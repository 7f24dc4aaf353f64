"""Write a factory bundle's layout and parts as a CAEX 3.0 or 2.15 document.

The inverse of `envs.factory.automationml.reader`: one InternalElement per stations.csv row
(nested under its ``parent_id``), one SystemUnitClass per parts.csv row, the role classes in a
``TestbedRoleClassLib`` of the file itself. The output validates against the shipped schema.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence

from lxml import etree

from envs.factory.automationml import mapping as m
from envs.factory.automationml._xml import CAEX3_NS

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_IDS = uuid.UUID("6f1c2a4e-0d3b-5f7a-9e21-8c4b7d6a5e30")
"""Namespace of the element IDs: uuid5 of the site and the element, so output is reproducible."""
ORIGIN = "physical-ai-testbed"


class _Builder:
    def __init__(self, version: str, site_id: str) -> None:
        self.ns = CAEX3_NS if version == "3.0" else ""
        self.version = version
        self.site_id = site_id

    def tag(self, local: str) -> str:
        return f"{{{self.ns}}}{local}" if self.ns else local

    def sub(
        self, parent: etree._Element, local: str, text: str | None = None, **attrs: str
    ) -> etree._Element:
        element = etree.SubElement(parent, self.tag(local), attrs)
        if text is not None:
            element.text = text
        return element

    def ident(self, kind: str, name: str) -> str:
        return str(uuid.uuid5(_IDS, f"{self.site_id}/{kind}/{name}"))

    def attribute(
        self,
        parent: etree._Element,
        name: str,
        value: str | None,
        data_type: str,
        unit: str | None = None,
    ) -> etree._Element:
        attrs = {"Name": name}
        if unit:
            attrs["Unit"] = unit
        if data_type:
            attrs["AttributeDataType"] = data_type
        element = self.sub(parent, "Attribute", **attrs)
        if value is not None:
            self.sub(element, "Value", value)
        return element


def _number(text: str) -> str:
    return repr(float(text) + 0.0)


def _degrees(text: str) -> str:
    return repr(round(math.degrees(float(text or 0.0)), m.ANGLE_DECIMALS) + 0.0)


def write_caex(
    *,
    site_id: str,
    name: str,
    robot_model: str,
    robot_station: str,
    stations: Sequence[Mapping[str, str]],
    parts: Sequence[Mapping[str, str]],
    file_name: str,
    written_at: str,
    version: str = "3.0",
) -> bytes:
    """A CAEX document (UTF-8 bytes) for a bundle's rows.

    Args:
        site_id: site.yaml ``site_id`` (the InstanceHierarchy's Name).
        name: site.yaml ``name`` (its Description).
        robot_model: site.yaml ``robot.model``.
        robot_station: site.yaml ``robot.station_id``.
        stations: stations.csv rows (text cells by column; missing columns are empty).
        parts: parts.csv rows.
        file_name: The CAEXFile's FileName.
        written_at: ``LastWritingDateTime`` (ISO 8601; CAEX 3.0 only).
        version: ``"3.0"`` or ``"2.15"``.

    Raises:
        ValueError: If a station's parent is tilted (rx or ry not 0): CAEX nests frames fully,
            the bundle applies only the parent's yaw, so the file would mean another layout.
    """
    b = _Builder(version, site_id)
    nsmap = {None: b.ns, "xsi": _XSI} if b.ns else {"xsi": _XSI}
    root = etree.Element(b.tag("CAEXFile"), nsmap=nsmap)  # type: ignore[arg-type]
    root.set("FileName", file_name)
    root.set("SchemaVersion", version)
    if version == "3.0":
        root.set(f"{{{_XSI}}}schemaLocation", f"{CAEX3_NS} CAEX_ClassModel_V.3.0.xsd")
        b.sub(root, "SuperiorStandardVersion", "AutomationML 2.10")
        b.sub(
            root,
            "SourceDocumentInformation",
            OriginName=ORIGIN,
            OriginID=ORIGIN,
            OriginVersion="1",
            LastWritingDateTime=written_at,
        )
    else:
        root.set(f"{{{_XSI}}}noNamespaceSchemaLocation", "CAEX_ClassModel_V2.15.xsd")
        b.sub(root, "AdditionalInformation", AutomationMLVersion="2.0")
    hierarchy = b.sub(root, "InstanceHierarchy", Name=site_id, ID=b.ident("ih", site_id))
    b.sub(hierarchy, "Description", name)
    _stations(b, hierarchy, stations, robot_model, robot_station)
    _role_library(b, root)
    _part_library(b, root, parts)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _stations(
    b: _Builder,
    hierarchy: etree._Element,
    rows: Sequence[Mapping[str, str]],
    robot_model: str,
    robot_station: str,
) -> None:
    by_id = {row["station_id"]: row for row in rows}
    elements: dict[str, etree._Element] = {}
    for row in _parents_first(rows):
        parent_id = row.get("parent_id") or ""
        if parent_id and parent_id in by_id:
            parent = by_id[parent_id]
            if float(parent.get("rx") or 0) or float(parent.get("ry") or 0):
                raise ValueError(
                    f"station {row['station_id']!r}: its parent {parent_id!r} has rx "
                    "or ry != 0, which a CAEX child frame would apply"
                )
        container = elements.get(parent_id, hierarchy)
        element = b.sub(
            container,
            "InternalElement",
            Name=row["station_id"],
            ID=b.ident("station", row["station_id"]),
        )
        elements[row["station_id"]] = element
        frame = b.attribute(element, m.FRAME, None, "")
        if b.version == "3.0":
            frame.set("RefAttributeType", m.FRAME_TYPE)
        for axis, column, unit in m.FRAME_AXES:
            value = _degrees(row.get(column) or "0") if unit == m.DEGREE else _number(row[column])
            b.attribute(frame, axis, value, "xs:double", unit)
        if any(row.get(column) for _, column in m.SIZE_AXES):
            size = b.attribute(element, m.SIZE, None, "")
            for axis, column in m.SIZE_AXES:
                if row.get(column):
                    b.attribute(size, axis, _number(row[column]), "xs:double", m.METRE)
        for scalar in m.STATION_SCALARS:
            if row.get(scalar.column):
                text = row[scalar.column]
                value = _number(text) if scalar.data_type == "xs:double" else text
                b.attribute(element, scalar.attribute, value, scalar.data_type, scalar.unit)
        if row["station_id"] == robot_station:
            b.attribute(element, m.ROBOT_MODEL, robot_model, "xs:string")
    for row in rows:  # after the nested InternalElements, as the schema orders them
        b.sub(
            elements[row["station_id"]],
            "RoleRequirements",
            RefBaseRoleClassPath=m.KIND_ROLES[row["kind"]],
        )


def _parents_first(rows: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """The rows in document order: each root in file order, then its children (depth first)."""
    ids = {row["station_id"] for row in rows}
    children: dict[str, list[Mapping[str, str]]] = {}
    for row in rows:
        parent = row.get("parent_id") or ""
        children.setdefault(parent if parent in ids else "", []).append(row)
    ordered: list[Mapping[str, str]] = []
    pending = list(reversed(children.get("", [])))
    while pending:
        row = pending.pop()
        ordered.append(row)
        pending.extend(reversed(children.get(row["station_id"], [])))
    return ordered


def _role_library(b: _Builder, root: etree._Element) -> None:
    lib = b.sub(root, "RoleClassLib", Name=m.ROLE_LIB, ID=b.ident("lib", m.ROLE_LIB))
    b.sub(
        lib,
        "Description",
        "Station and part roles of the physical-AI testbed's factory bundle (docs/automationml.md)",
    )
    b.sub(lib, "Version", "1.0.0")
    for role in [*m.TESTBED_ROLES, m.PART_ROLE.rsplit("/", 1)[1]]:
        b.sub(lib, "RoleClass", Name=role, ID=b.ident("role", role))


def _part_library(b: _Builder, root: etree._Element, rows: Sequence[Mapping[str, str]]) -> None:
    lib = b.sub(root, "SystemUnitClassLib", Name="TestbedPartLib", ID=b.ident("lib", "parts"))
    for row in rows:
        suc = b.sub(lib, "SystemUnitClass", Name=row["part_id"], ID=b.ident("part", row["part_id"]))
        for scalar in m.PART_SCALARS[:2]:  # DisplayName, Shape
            if row.get(scalar.column):
                b.attribute(suc, scalar.attribute, row[scalar.column], scalar.data_type)
        size = b.attribute(suc, m.SIZE, None, "")
        for axis, column in m.SIZE_AXES:
            b.attribute(size, axis, _number(row[column]), "xs:double", m.METRE)
        for scalar in m.PART_SCALARS[2:]:
            if row.get(scalar.column):
                text = row[scalar.column]
                value = _number(text) if scalar.data_type == "xs:double" else text
                b.attribute(suc, scalar.attribute, value, scalar.data_type, scalar.unit)
        b.sub(suc, "SupportedRoleClass", RefRoleClassPath=m.PART_ROLE)
