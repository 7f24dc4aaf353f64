"""Validate a CAEX document against the official CAEX 3.0 or 2.15 XML schema (`xmlschema`).

The schema files ship in ``schemas/``, unchanged copies of the ones AutomationML e.V. publishes
under the MIT licence in github.com/AutomationML/AML-UA-XSLT (``schemas/VENDOR.md``). They
import nothing, and the instance's ``xsi:schemaLocation`` is never followed: nothing is fetched.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import xmlschema

from envs.errors import DataIssue
from envs.factory.automationml._xml import CaexDocument, where

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_FILES = {"3.0": "CAEX_ClassModel_V.3.0.xsd", "2.15": "CAEX_ClassModel_V2.15.xsd"}
"""The shipped XSD of each CAEX version."""
MAX_LISTED = 20
"""Most schema violations listed (a wholly wrong file would list thousands)."""


@lru_cache(maxsize=2)
def caex_schema(version: str) -> xmlschema.XMLSchema10:
    """The compiled XSD of CAEX ``version`` (built once per process: about 0.3 s)."""
    return xmlschema.XMLSchema10(str(SCHEMA_DIR / SCHEMA_FILES[version]))


def schema_issues(document: CaexDocument) -> list[DataIssue]:
    """Every violation of the CAEX schema (at most `MAX_LISTED`), each at its element.

    Args:
        document: A document that passed the hardened parser.

    Returns:
        The violations, empty if the document is valid.
    """
    schema = caex_schema(document.version)
    issues: list[DataIssue] = []
    for error in schema.iter_errors(document.root, use_location_hints=False):
        if len(issues) == MAX_LISTED:
            issues.append(
                DataIssue(
                    document.name, "", "more violations", f"the first {MAX_LISTED} are listed"
                )
            )
            break
        element = error.elem
        location = (
            where(element)
            if element is not None and hasattr(element, "sourceline")
            else (error.path or "")
        )
        reason = (error.reason or str(error)).strip().rstrip(".")
        expected = f"valid CAEX {document.version} ({SCHEMA_FILES[document.version]}): {reason}"
        issues.append(DataIssue(document.name, location, "", expected))
    return issues
