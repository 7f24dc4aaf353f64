"""Hardened reading of a CAEX file: an AutomationML export is untrusted input.

`read_caex` refuses, before anything is mapped:

- a file over `MAX_AML_BYTES` (read no further than one byte past the limit, so a 50 MB or a
  multi-gigabyte file costs no more than the limit);
- any document type declaration (``<!DOCTYPE``): no DTD is loaded, no entity is expanded (the
  "billion laughs" and external-entity attacks both need one), nothing is fetched from the
  network (lxml's ``no_network``), and a file that declares one is rejected outright;
- processing instructions other than the XML declaration, and XInclude is never run;
- nesting deeper than `MAX_DEPTH` elements and more than `MAX_ELEMENTS` elements;
- a root other than ``CAEXFile`` in the CAEX 3.0 namespace (``http://www.dke.de/CAEX``) or in
  no namespace (CAEX 2.15), with the matching ``SchemaVersion``.

Every refusal is a `DataIssue` naming the file, the line, the element path and the attribute.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from envs.errors import DataIssue

MIB = 1024 * 1024
MAX_AML_BYTES = 16 * MIB
"""Largest CAEX file accepted (bytes): a cell's layout is kilobytes."""
MAX_DEPTH = 64
"""Deepest element nesting accepted."""
MAX_ELEMENTS = 200_000
"""Most elements accepted."""
CAEX3_NS = "http://www.dke.de/CAEX"
"""The XML namespace of CAEX 3.0; CAEX 2.15 documents have none."""
VERSIONS = {CAEX3_NS: "3.0", "": "2.15"}
"""The CAEX version each root namespace stands for."""
_ROOT_START = re.compile(r"<[^?!]")


@dataclass(frozen=True)
class CaexDocument:
    """A parsed CAEX file.

    Attributes:
        name: The file name used in issues (``plant.aml``).
        root: The ``CAEXFile`` element.
        version: ``"3.0"`` or ``"2.15"``.
        namespace: The CAEX namespace (``""`` for 2.15).
    """

    name: str
    root: etree._Element
    version: str
    namespace: str

    def tag(self, local: str) -> str:
        """The qualified tag of a CAEX element, e.g. ``{http://www.dke.de/CAEX}Attribute``."""
        return f"{{{self.namespace}}}{local}" if self.namespace else local


class CaexError(Exception):
    """A CAEX file was refused; ``issues`` says where and why."""

    def __init__(self, issues: list[DataIssue]) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = issues


def local_name(element: etree._Element) -> str:
    """The tag without its namespace (``InternalElement``)."""
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def element_path(element: etree._Element) -> str:
    """``/CAEXFile/InstanceHierarchy[@Name='cell']/InternalElement[@Name='bin1']``."""
    parts = []
    node: etree._Element | None = element
    while node is not None:
        name = node.get("Name")
        parts.append(local_name(node) + (f"[@Name={name!r}]" if name is not None else ""))
        node = node.getparent()
    return "/" + "/".join(reversed(parts))


def where(element: etree._Element, attribute: str = "") -> str:
    """An issue location: ``line 12, /CAEXFile/.../Attribute[@Name='x'], attribute Value``."""
    line = f"line {element.sourceline}, " if element.sourceline else ""
    return line + element_path(element) + (f", attribute {attribute}" if attribute else "")


def issue(
    name: str, element: etree._Element, attribute: str, value: str, expected: str
) -> DataIssue:
    """A `DataIssue` at ``element`` (and ``attribute``) of CAEX file ``name``."""
    return DataIssue(name, where(element, attribute), value, expected)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,  # never expand an entity, internal or external
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,  # keep libxml2's own depth and text-size limits
        remove_comments=True,
        remove_pis=False,  # seen, then refused below
        collect_ids=False,
    )


def read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes, refusing one over `MAX_AML_BYTES` without reading it all.

    Raises:
        CaexError: If the file is missing, unreadable or too large.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_AML_BYTES + 1)
    except OSError as error:
        raise CaexError(
            [DataIssue(name, "", str(error.strerror or error), "a readable file")]
        ) from None
    if len(data) > MAX_AML_BYTES:
        got = f"more than {MAX_AML_BYTES // MIB} MiB"
        expected = f"a CAEX file of at most {MAX_AML_BYTES // MIB} MiB (a cell's layout is kB)"
        raise CaexError([DataIssue(name, "", got, expected)])
    if not data.strip():
        raise CaexError([DataIssue(name, "", "an empty file", "a CAEX XML document")])
    return data


def parse_caex(data: bytes, name: str) -> CaexDocument:
    """Parse CAEX bytes with every limit of this module.

    Args:
        data: The file's bytes (see `read_bytes`).
        name: The file name used in issues.

    Raises:
        CaexError: With the line, element path and attribute of what was refused.
    """
    _check_prolog(data, name)
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as error:
        line = f"line {error.lineno}, column {error.offset}" if error.lineno else ""
        raise CaexError([DataIssue(name, line, error.msg, "well-formed XML")]) from None
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.system_url:
        expected = "no DOCTYPE: CAEX needs no DTD, and entities are never expanded or fetched"
        raise CaexError([DataIssue(name, "line 1, DOCTYPE", docinfo.doctype, expected)])
    root = tree.getroot()
    for sibling in [*root.itersiblings(preceding=True), *root.itersiblings()]:
        _check_shape(sibling, name)
    _check_shape(root, name)
    namespace = etree.QName(root).namespace or ""
    if local_name(root) != "CAEXFile" or namespace not in VERSIONS:
        got = repr(root.tag)
        expected = (
            f"root element CAEXFile in namespace {CAEX3_NS!r} (CAEX 3.0) or in no namespace "
            "(CAEX 2.15)"
        )
        raise CaexError([issue(name, root, "", got, expected)])
    version = VERSIONS[namespace]
    declared = root.get("SchemaVersion")
    if declared != version:
        expected = f"SchemaVersion {version!r} for a CAEXFile in " + (
            f"namespace {namespace!r}" if namespace else "no namespace"
        )
        raise CaexError([issue(name, root, "SchemaVersion", repr(declared), expected)])
    return CaexDocument(name, root, version, namespace)


def _check_prolog(data: bytes, name: str) -> None:
    """Refuse a text that is not UTF-8 or UTF-16, and a DOCTYPE, before libxml2 sees it.

    The parser would expand no entity anyway (and libxml2 stops an amplification), but this
    names the real problem, the DTD, instead of a parser limit.
    """
    codec = "utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        expected = "UTF-8 text (or UTF-16 with a byte order mark)"
        raise CaexError([DataIssue(name, f"byte {error.start}", "", expected)]) from None
    root = _ROOT_START.search(text)
    prolog = text[: root.start()] if root else text
    doctype = prolog.find("<!DOCTYPE")
    if doctype >= 0:
        line = prolog.count("\n", 0, doctype) + 1
        expected = "no DOCTYPE: CAEX needs no DTD, and entities are never expanded or fetched"
        raise CaexError([DataIssue(name, f"line {line}, DOCTYPE", "", expected)])


def _check_shape(root: etree._Element, name: str) -> None:
    """Refuse processing instructions, entity references, deep nesting and huge trees."""
    count = 0
    pending: list[tuple[etree._Element, int]] = [(root, 1)]
    while pending:
        element, depth = pending.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise CaexError(
                [
                    DataIssue(
                        name,
                        "",
                        f"more than {MAX_ELEMENTS:,} elements",
                        f"at most {MAX_ELEMENTS:,} elements",
                    )
                ]
            )
        if isinstance(element, etree._ProcessingInstruction):
            raise CaexError(
                [
                    DataIssue(
                        name,
                        f"line {element.sourceline}",
                        f"<?{element.target} ...?>",
                        "no processing instructions",
                    )
                ]
            )
        if isinstance(element, etree._Entity):
            raise CaexError(
                [
                    DataIssue(
                        name,
                        f"line {element.sourceline}",
                        f"&{element.name};",
                        "no entity references (no DTD defines them)",
                    )
                ]
            )
        if depth > MAX_DEPTH:
            raise CaexError(
                [
                    issue(
                        name,
                        element,
                        "",
                        f"nesting depth {depth}",
                        f"at most {MAX_DEPTH} nested elements",
                    )
                ]
            )
        pending.extend((child, depth + 1) for child in element)
