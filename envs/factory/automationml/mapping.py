"""The CAEX <-> factory bundle mapping: role classes, attribute names and units.

One table that the reader, the writer and ``docs/automationml.md`` follow:

==========================================================  =====================================
CAEX                                                        bundle
==========================================================  =====================================
``InstanceHierarchy/@Name``                                 site.yaml ``site_id``
``InstanceHierarchy/Description``                           site.yaml ``name``
``InternalElement`` with a station role (`STATION_ROLES`)   one stations.csv row
``InternalElement/@Name``                                   ``station_id``
the role class (``RoleRequirements/@RefBaseRoleClassPath``  ``kind``
or ``SupportedRoleClass/@RefRoleClassPath``)
the enclosing station ``InternalElement``                   ``parent_id``
``Attribute Frame``: ``x``, ``y``, ``z`` (m),               ``x``, ``y``, ``z`` (m),
``rx``, ``ry``, ``rz`` (degrees)                            ``rx``, ``ry``, ``rz`` (radians)
``Attribute Size``: ``x``, ``y``, ``z`` (m)                 ``size_x``, ``size_y``, ``size_z``
``Attribute ConveyorSpeed`` (m/s)                           ``conveyor_speed_mps``
``Attribute Payload`` (kg)                                  ``payload_kg``
``Attribute Accepts`` (part ids, ``|``-separated)           ``accepts``
``Attribute RobotModel`` on the robot                       site.yaml ``robot.model``; the
                                                            robot's Name is ``robot.station_id``
``SystemUnitClass`` (or ``InternalElement``) with role      one parts.csv row
``TestbedRoleClassLib/Part``; its ``@Name``                 ``part_id``
``DisplayName``, ``Shape``, ``Size``, ``Mass`` (kg),        ``name``, ``shape``, ``size_*``,
``Friction``, ``Color``, ``MeshURI``                        ``mass_kg``, ``friction``, ``color``,
                                                            ``mesh_uri``
==========================================================  =====================================
"""

from __future__ import annotations

from dataclasses import dataclass

ROLE_LIB = "TestbedRoleClassLib"
"""The role class library the writer emits and the reader knows."""

TESTBED_ROLES = {
    "Robot": "robot",
    "Conveyor": "conveyor",
    "Bin": "bin",
    "Fixture": "fixture",
    "Pallet": "pallet",
    "Camera": "camera",
    "WorkerArea": "walkway",
    "Table": "table",
}
"""Role class name in `ROLE_LIB` -> station kind."""

_EXTENDED = "AutomationMLExtendedRoleClassLib"
STATION_ROLES: dict[str, str] = {
    **{f"{ROLE_LIB}/{role}": kind for role, kind in TESTBED_ROLES.items()},
    # AutomationML's own role classes where they mean exactly one station kind.
    f"{_EXTENDED}/Robot": "robot",
    f"{_EXTENDED}/Conveyor": "conveyor",
    f"{_EXTENDED}/BeltConveyor": "conveyor",
    f"{_EXTENDED}/RollConveyor": "conveyor",
    f"{_EXTENDED}/ChainConveyor": "conveyor",
}
"""Role class path -> station kind. Any other role is reported (unless a role class of the
file derives from one of these through ``RefBaseClassPath``), never guessed."""

KIND_ROLES = {kind: f"{ROLE_LIB}/{role}" for role, kind in TESTBED_ROLES.items()}
"""Station kind -> the role class path the writer uses."""

PART_ROLE = f"{ROLE_LIB}/Part"
"""The role of a part type (a parts.csv row)."""

_BASE = "AutomationMLBaseRoleClassLib/AutomationMLBaseRole"
CONTAINER_ROLES = frozenset(
    {f"{_BASE}/Group", f"{_BASE}/Structure", f"{_BASE}/Structure/ResourceStructure"}
)
"""Roles of elements that only group stations: their children are stations in the world
frame, so a container must have no Frame, or a zero one."""

FRAME = "Frame"
FRAME_TYPE = "AutomationMLBaseAttributeTypeLib/Frame"
SIZE = "Size"
METRE, DEGREE, KILOGRAM, SPEED = "m", "deg", "kg", "m/s"


@dataclass(frozen=True)
class Scalar:
    """One scalar attribute: its CAEX name, the bundle column, unit and data type."""

    attribute: str
    column: str
    unit: str | None
    data_type: str  # xs:double or xs:string


STATION_SCALARS = (
    Scalar("ConveyorSpeed", "conveyor_speed_mps", SPEED, "xs:double"),
    Scalar("Payload", "payload_kg", KILOGRAM, "xs:double"),
    Scalar("Accepts", "accepts", None, "xs:string"),
)
"""Optional station attributes besides Frame and Size."""
ROBOT_MODEL = "RobotModel"
"""The robot's model attribute (site.yaml ``robot.model``)."""

PART_SCALARS = (
    Scalar("DisplayName", "name", None, "xs:string"),
    Scalar("Shape", "shape", None, "xs:string"),
    Scalar("Mass", "mass_kg", KILOGRAM, "xs:double"),
    Scalar("Friction", "friction", None, "xs:double"),
    Scalar("Color", "color", None, "xs:string"),
    Scalar("MeshURI", "mesh_uri", None, "xs:string"),
)
"""Part attributes besides Size."""

FRAME_AXES = (
    ("x", "x", METRE),
    ("y", "y", METRE),
    ("z", "z", METRE),
    ("rx", "rx", DEGREE),
    ("ry", "ry", DEGREE),
    ("rz", "rz", DEGREE),
)
"""Frame sub-attribute, bundle column, unit; x, y, z are required, rotations default to 0."""
SIZE_AXES = (("x", "size_x"), ("y", "size_y"), ("z", "size_z"))
"""Size sub-attribute -> bundle column (metres)."""

STATION_COLUMNS = (
    "station_id kind parent_id x y z rx ry rz size_x size_y size_z "
    "conveyor_speed_mps payload_kg accepts"
).split()
PART_COLUMNS = "part_id name shape size_x size_y size_z mass_kg friction color mesh_uri".split()

AML_KEYS = (("site_id",), ("name",), ("robot", "model"), ("robot", "station_id"))
"""site.yaml keys the CAEX file carries; everything else comes from the settings side file."""
ANGLE_DECIMALS = 9
"""Radians are rounded to this many decimals on import, so degrees -> radians -> degrees ->
radians is exact (an import, export and import give the same bundle)."""
