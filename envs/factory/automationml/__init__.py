"""AutomationML (IEC 62714, CAEX 3.0 and 2.15) import and export of factory bundles.

Build a bundle from a plant engineer's CAEX export, and write a bundle back as one
(``docs/automationml.md``).

- `convert.import_aml` / `convert.export_aml`: the two directions, end to end;
- `mapping`: the CAEX <-> bundle table (role classes, attributes, units);
- `reader` / `writer`: the mapping itself;
- `_xml`: hardened parsing (size, depth and element limits; no DTD, entities or network);
- `_schema`: validation against the shipped CAEX XSDs with `xmlschema`.
"""

from envs.factory.automationml.convert import ImportResult, export_aml, import_aml

__all__ = ["ImportResult", "export_aml", "import_aml"]
