"""The committed generated code is exactly what grpc_tools produces from the .proto."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[2]
PROTO = Path("protos/v1/policy_service.proto")
GENERATED = ("policy_service_pb2.py", "policy_service_pb2.pyi", "policy_service_pb2_grpc.py")


def test_regenerating_gives_no_diff(tmp_path: Path) -> None:
    (tmp_path / PROTO.parent).mkdir(parents=True)
    shutil.copy(REPO / PROTO, tmp_path / PROTO)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{tmp_path}",
        f"-I{well_known}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(tmp_path / PROTO),
    ]
    assert protoc.main(args) == 0
    for name in GENERATED:
        fresh = (tmp_path / PROTO.parent / name).read_text()
        committed = (REPO / PROTO.parent / name).read_text()
        assert fresh == committed, (
            f"{name} is stale: regenerate (see protos/v1/policy_service.proto)"
        )
