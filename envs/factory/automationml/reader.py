"""Read a parsed CAEX document into the rows of a factory bundle (the table in `mapping`).

Only the structure is mapped here; the values' ranges and the rules across files are checked by
the bundle loader afterwards, exactly as for a CSV bundle. What this module refuses itself is
what cannot be mapped at all: an element whose role is unknown, a station without a Frame, a
value that is not a number, a unit other than the documented one, duplicate IDs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lxml import etree

from envs.errors import DataIssue
from envs.factory.automationml import mapping as m
from envs.factory.automationml._xml import CaexDocument, CaexError, issue, where

MAX_ROLE_HOPS = 32
"""Longest ``RefBaseClassPath`` chain followed from a role class to a known one."""


@dataclass
class CaexSite:
    """What a CAEX instance hierarchy says about a site, as bundle rows (text cells).

    Attributes:
        site_id: ``InstanceHierarchy/@Name``.
        name: ``InstanceHierarchy/Description``, if given.
        robot_model: The robot's ``RobotModel`` attribute, if given.
        robot_station: The robot's Name, if there is a robot.
        stations: stations.csv rows in document order.
        parts: parts.csv rows.
        origins: Where each row came from, by file and row number (``("stations.csv", 1)``).
        skipped: Elements left out because their role is unknown (with ``skip_unknown``).
    """

    site_id: str
    name: str | None = None
    robot_model: str | None = None
    robot_station: str | None = None
    stations: list[dict[str, str]] = field(default_factory=list)
    parts: list[dict[str, str]] = field(default_factory=list)
    origins: dict[tuple[str, int], str] = field(default_factory=dict)
    skipped: list[DataIssue] = field(default_factory=list)


class _Reader:
    def __init__(self, document: CaexDocument, skip_unknown: bool) -> None:
        self.doc = document
        self.skip_unknown = skip_unknown
        self.issues: list[DataIssue] = []
        self.role_bases = self._role_classes()

    # ---------------------------------------------------------------- helpers

    def problem(self, element: etree._Element, attribute: str, value: str, expected: str) -> None:
        self.issues.append(issue(self.doc.name, element, attribute, value, expected))

    def children(self, element: etree._Element, local: str) -> list[etree._Element]:
        return element.findall(self.doc.tag(local))

    def _role_classes(self) -> dict[str, str | None]:
        """Every role class path defined in the file -> its ``RefBaseClassPath``."""
        bases: dict[str, str | None] = {}
        for lib in self.children(self.doc.root, "RoleClassLib"):
            pending = [
                (rc, f"{lib.get('Name')}/{rc.get('Name')}")
                for rc in self.children(lib, "RoleClass")
            ]
            while pending:
                role, path = pending.pop()
                bases[path] = role.get("RefBaseClassPath")
                pending.extend(
                    (sub, f"{path}/{sub.get('Name')}") for sub in self.children(role, "RoleClass")
                )
        return bases

    def resolve(self, path: str) -> str | None:
        """A role path -> station kind, ``part``, ``container`` or None (unknown)."""
        if "@" in path and path not in self.role_bases:
            path = path.split("@", 1)[1]  # CAEX's "alias@path" into an ExternalReference
        for _ in range(MAX_ROLE_HOPS):
            if path in m.STATION_ROLES:
                return m.STATION_ROLES[path]
            if path == m.PART_ROLE:
                return "part"
            if path in m.CONTAINER_ROLES:
                return "container"
            base = self.role_bases.get(path)
            if not base:
                return None
            path = base
        return None

    def role_of(self, element: etree._Element) -> tuple[str | None, list[str]]:
        paths = [
            r.get("RefBaseRoleClassPath") or "" for r in self.children(element, "RoleRequirements")
        ]
        paths += [
            r.get("RefRoleClassPath") or "" for r in self.children(element, "SupportedRoleClass")
        ]
        for path in paths:
            role = self.resolve(path)
            if role is not None:
                return role, paths
        return None, paths

    def attributes(self, element: etree._Element) -> dict[str, etree._Element]:
        found: dict[str, etree._Element] = {}
        for attribute in self.children(element, "Attribute"):
            name = attribute.get("Name") or ""
            if name in found:
                first = found[name].sourceline
                self.problem(
                    attribute,
                    "Name",
                    repr(name),
                    f"one Attribute of that name (the first is on line {first})",
                )
            else:
                found[name] = attribute
        return found

    def text(self, attribute: etree._Element) -> str | None:
        for local in ("Value", "DefaultValue"):
            value = attribute.find(self.doc.tag(local))
            if value is not None:
                return (value.text or "").strip()
        return None

    def number(self, attribute: etree._Element, unit: str | None) -> float | None:
        given = attribute.get("Unit")
        if unit is not None and given not in (None, "", unit):
            self.problem(attribute, "Unit", repr(given), f"Unit {unit!r} (convert the value)")
            return None
        text = self.text(attribute)
        if text is None or text == "":
            self.problem(attribute, "Value", "no Value", "a number in a Value element")
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.problem(attribute, "Value", repr(text), "a finite number")
            return None
        return value + 0.0  # no -0.0

    # ---------------------------------------------------------------- stations

    def frame(self, element: etree._Element, row: dict[str, str]) -> tuple[float, float] | None:
        """Fill x..rz from the Frame attribute; return (rx, ry) in degrees, or None if absent."""
        frame = self.attributes(element).get(m.FRAME)
        if frame is None:
            self.problem(
                element,
                "",
                "no Frame attribute",
                "an Attribute Frame with x, y, z (m) and rx, ry, rz (degrees)",
            )
            return None
        axes = self.attributes(frame)
        tilt = [0.0, 0.0]
        for axis, column, unit in m.FRAME_AXES:
            sub = axes.get(axis)
            if sub is None:
                if unit == m.METRE:
                    self.problem(frame, "", f"no {axis}", f"an Attribute {axis} (m) in the Frame")
                row[column] = "0.0"
                continue
            value = self.number(sub, unit)
            if value is None:
                continue
            if unit == m.DEGREE:
                if axis != "rz":
                    tilt[axis == "ry"] = value
                value = round(math.radians(value), m.ANGLE_DECIMALS) + 0.0
            row[column] = repr(value)
        return tilt[0], tilt[1]

    def station(self, element: etree._Element, kind: str, parent: str) -> dict[str, str]:
        row = dict.fromkeys(m.STATION_COLUMNS, "")
        row.update(station_id=element.get("Name") or "", kind=kind, parent_id=parent)
        self.frame(element, row)
        found = self.attributes(element)
        size = found.get(m.SIZE)
        if size is not None:
            axes = self.attributes(size)
            for axis, column in m.SIZE_AXES:
                if axis in axes and (value := self.number(axes[axis], m.METRE)) is not None:
                    row[column] = repr(value)
        for scalar in m.STATION_SCALARS:
            if scalar.attribute in found:
                row[scalar.column] = self.scalar(found[scalar.attribute], scalar)
        return row

    def scalar(self, attribute: etree._Element, scalar: m.Scalar) -> str:
        if scalar.data_type == "xs:double":
            value = self.number(attribute, scalar.unit)
            return "" if value is None else repr(value)
        return self.text(attribute) or ""

    def part(self, element: etree._Element) -> dict[str, str]:
        row = dict.fromkeys(m.PART_COLUMNS, "")
        row["part_id"] = element.get("Name") or ""
        found = self.attributes(element)
        size = found.get(m.SIZE)
        if size is None:
            self.problem(element, "", "no Size attribute", "an Attribute Size with x, y, z (m)")
        else:
            axes = self.attributes(size)
            for axis, column in m.SIZE_AXES:
                if axis not in axes:
                    self.problem(size, "", f"no {axis}", f"an Attribute {axis} (m) in the Size")
                elif (value := self.number(axes[axis], m.METRE)) is not None:
                    row[column] = repr(value)
        for scalar in m.PART_SCALARS:
            if scalar.attribute in found:
                row[scalar.column] = self.scalar(found[scalar.attribute], scalar)
        return row

    # ---------------------------------------------------------------- walk

    def hierarchy(self, name: str | None) -> etree._Element:
        hierarchies = self.children(self.doc.root, "InstanceHierarchy")
        names = [h.get("Name") or "" for h in hierarchies]
        chosen = [h for h in hierarchies if name is None or h.get("Name") == name]
        if len(chosen) != 1:
            got = f"{len(hierarchies)} InstanceHierarchy element(s)" + (
                f": {', '.join(map(repr, names))}" if names else ""
            )
            expected = (
                "exactly one InstanceHierarchy"
                if name is None
                else f"an InstanceHierarchy named {name!r}"
            )
            if name is None and hierarchies:
                expected += " (choose one with --hierarchy)"
            raise CaexError([issue(self.doc.name, self.doc.root, "", got, expected)])
        return chosen[0]

    def read(self, name: str | None) -> CaexSite:
        self.check_ids()
        top = self.hierarchy(name)
        site = CaexSite(site_id=top.get("Name") or "")
        description = top.find(self.doc.tag("Description"))
        if description is not None and (description.text or "").strip():
            site.name = (description.text or "").strip()
        pending = [(child, "") for child in reversed(self.children(top, "InternalElement"))]
        seen: dict[str, etree._Element] = {}
        while pending:
            element, parent = pending.pop()
            role, paths = self.role_of(element)
            below = parent
            if role is None:
                got = ", ".join(map(repr, paths)) if paths else "no role class"
                expected = (
                    "a role class of "
                    + ", ".join(sorted(m.STATION_ROLES))
                    + f", {m.PART_ROLE} or a group (or one derived from them)"
                )
                found = issue(self.doc.name, element, "RefBaseRoleClassPath", got, expected)
                (site.skipped if self.skip_unknown else self.issues).append(found)
                continue  # its children are left out with it
            if role == "part":
                self.add_part(site, element)
                continue
            if role == "container":
                self.check_container(element)
            else:
                below = self.add_station(site, element, role, parent, seen)
            pending.extend(
                (child, below) for child in reversed(self.children(element, "InternalElement"))
            )
        for suc_lib in self.children(self.doc.root, "SystemUnitClassLib"):
            for suc in suc_lib.iter(self.doc.tag("SystemUnitClass")):
                if self.role_of(suc)[0] == "part":
                    self.add_part(site, suc)
        if self.issues:
            raise CaexError(self.issues)
        return site

    def add_station(
        self,
        site: CaexSite,
        element: etree._Element,
        kind: str,
        parent: str,
        seen: dict[str, etree._Element],
    ) -> str:
        name = element.get("Name") or ""
        if name in seen:
            self.problem(
                element,
                "Name",
                repr(name),
                f"a unique station Name (also on line {seen[name].sourceline})",
            )
        seen[name] = element
        if parent and (tilted := self._tilted(seen[parent])):
            self.problem(
                element,
                "",
                f"a station inside {parent!r}, whose Frame has {tilted}",
                "children only of stations with rx = ry = 0 (the bundle applies a "
                "parent's position and yaw, not its roll and pitch)",
            )
        row = self.station(element, kind, parent)
        site.stations.append(row)
        site.origins[("stations.csv", len(site.stations))] = where(element)
        if kind == "robot" and site.robot_station is None:
            site.robot_station = name
            model = self.attributes(element).get(m.ROBOT_MODEL)
            site.robot_model = self.text(model) if model is not None else None
        return name

    def _tilted(self, element: etree._Element) -> str:
        frame = self.attributes(element).get(m.FRAME)
        axes = self.attributes(frame) if frame is not None else {}
        tilted = [
            a
            for a in ("rx", "ry")
            if a in axes and (self.text(axes[a]) or "0") not in ("0", "0.0", "-0.0")
        ]
        return " and ".join(f"{a} != 0" for a in tilted)

    def check_container(self, element: etree._Element) -> None:
        frame = self.attributes(element).get(m.FRAME)
        if frame is None:
            return
        for axis in self.attributes(frame).values():
            value = self.number(axis, None)
            if value not in (None, 0.0):
                self.problem(
                    axis,
                    "Value",
                    repr(self.text(axis)),
                    "0: a group's children are placed in the world frame; give the "
                    "offset to each station instead",
                )

    def add_part(self, site: CaexSite, element: etree._Element) -> None:
        site.parts.append(self.part(element))
        site.origins[("parts.csv", len(site.parts))] = where(element)

    def check_ids(self) -> None:
        first: dict[str, etree._Element] = {}
        for element in self.doc.root.iter():
            identifier = element.get("ID") if isinstance(element.tag, str) else None
            if identifier is None:
                continue
            if identifier in first:
                self.problem(
                    element,
                    "ID",
                    repr(identifier),
                    f"a unique ID (also at {where(first[identifier])})",
                )
            else:
                first[identifier] = element


def read_site(
    document: CaexDocument, hierarchy: str | None = None, skip_unknown: bool = False
) -> CaexSite:
    """Map the instance hierarchy of ``document`` to bundle rows.

    Args:
        document: A parsed (and schema-valid) CAEX document.
        hierarchy: The InstanceHierarchy to read, by Name; required if there are several.
        skip_unknown: Leave elements with an unknown role out (listed in ``skipped``) instead
            of refusing the file.

    Raises:
        CaexError: With every element that cannot be mapped.
    """
    return _Reader(document, skip_unknown).read(hierarchy)
