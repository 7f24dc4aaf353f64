"""Read and patch the collision-object ids in the bytes of a ``.bullet`` file (no pybullet).

PyBullet's ``restoreState(fileName=...)`` puts the saved contact manifolds (cached contact
points and the solver's warm-start impulses) back by matching each manifold's two collision
objects on their *broadphase unique id*. That id is a counter of the physics world, bumped for
every collision object ever added: a world that has removed and re-made part bodies (every
episode after the first in an env) gives the same parts larger ids than a freshly built one.
A state saved in one such world and restored in another then finds no matching manifold, the
contacts start cold, and the trajectory drifts from the first step (bullet3's
``btMultiBodyWorldImporter`` prints "cannot find maching contact manifold").

`collision_object_ids` reads the ids a file holds, in the order of its collision-object chunks
(the world's object order); `with_collision_object_ids` writes other ids in, so a state can be
translated to the ids of the world it is restored into.

File layout (bullet3 ``bFile``): a 12-byte header (``BULLET``, ``d``/``f`` precision, ``-``/``_``
for 64/32-bit pointers, ``v``/``V`` for little/big endian, version), then chunks (code, length,
old pointer, DNA struct index, count; then the data), one of them ``DNA1``: the names, types,
sizes and fields of every struct, from which the offsets are computed.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

_COLLISION_OBJECT = ("btCollisionObjectDoubleData", "btCollisionObjectFloatData")
_ARRAY = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class _Chunk:
    code: bytes
    struct_index: int
    count: int
    data_offset: int
    length: int


@dataclass(frozen=True)
class _Dna:
    names: list[str]
    types: list[str]
    sizes: list[int]
    structs: dict[int, list[tuple[int, int]]]  # type index -> fields (type index, name index)
    struct_types: list[int]  # struct index -> type index


class _BulletFile:
    """The chunk table and struct layouts of one ``.bullet`` file."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 12 or blob[:6] != b"BULLET":
            raise ValueError(f"not a .bullet file (header {blob[:12]!r})")
        self.pointer = 8 if blob[7:8] == b"-" else 4
        self.endian = ">" if blob[8:9] == b"V" else "<"
        self.chunks = self._chunks(blob)
        dna = [c for c in self.chunks if c.code == b"DNA1"]
        if not dna:
            raise ValueError(".bullet file without a DNA1 chunk")
        start = dna[0].data_offset
        self.dna = self._dna(blob[start : start + dna[0].length])

    def _chunks(self, blob: bytes) -> list[_Chunk]:
        header = 16 + self.pointer
        chunks, offset = [], 12
        while offset + header <= len(blob):
            code = blob[offset : offset + 4]
            (length,) = struct.unpack_from(self.endian + "i", blob, offset + 4)
            index, count = struct.unpack_from(self.endian + "ii", blob, offset + 8 + self.pointer)
            if length < 0 or offset + header + length > len(blob):
                raise ValueError(f".bullet chunk {code!r} at byte {offset} runs past the end")
            chunks.append(_Chunk(code, index, count, offset + header, length))
            if code == b"ENDB":
                break
            offset += header + length
        return chunks

    def _dna(self, data: bytes) -> _Dna:
        e = self.endian
        offset = 0

        def tag(expected: bytes) -> None:
            nonlocal offset
            if data[offset : offset + 4] != expected:
                raise ValueError(f".bullet DNA: expected {expected!r} at byte {offset}")
            offset += 4

        def strings() -> list[str]:
            nonlocal offset
            (count,) = struct.unpack_from(e + "i", data, offset)
            offset += 4
            out = []
            for _ in range(count):
                end = data.index(b"\0", offset)
                out.append(data[offset:end].decode("ascii"))
                offset = end + 1
            offset = (offset + 3) & ~3
            return out

        tag(b"SDNA")
        tag(b"NAME")
        names = strings()
        tag(b"TYPE")
        types = strings()
        tag(b"TLEN")
        sizes = list(struct.unpack_from(f"{e}{len(types)}h", data, offset))
        offset = (offset + 2 * len(types) + 3) & ~3
        tag(b"STRC")
        (count,) = struct.unpack_from(e + "i", data, offset)
        offset += 4
        structs: dict[int, list[tuple[int, int]]] = {}
        struct_types = []
        for _ in range(count):
            type_index, n = struct.unpack_from(e + "hh", data, offset)
            fields = struct.unpack_from(f"{e}{2 * n}h", data, offset + 4)
            structs[type_index] = list(zip(fields[::2], fields[1::2], strict=True))
            struct_types.append(type_index)
            offset += 4 + 4 * n
        return _Dna(names, types, sizes, structs, struct_types)

    def _field_size(self, type_index: int, name: str) -> int:
        count = 1
        for dim in _ARRAY.findall(name):
            count *= int(dim)
        is_pointer = name.startswith("*") or name.startswith("(*")
        return (self.pointer if is_pointer else self.dna.sizes[type_index]) * count

    def id_offset(self, type_index: int) -> int | None:
        """Offset of the collision object's ``m_uniqueId`` in a struct, if it holds one."""
        dna = self.dna
        offset = 0
        for field_type, name_index in dna.structs.get(type_index, []):
            name = dna.names[name_index]
            if dna.types[type_index] in _COLLISION_OBJECT and name == "m_uniqueId":
                return offset
            embedded = not name.startswith("*") and not name.startswith("(*") and "[" not in name
            if embedded and dna.types[field_type] in _COLLISION_OBJECT:
                inner = self.id_offset(field_type)
                if inner is not None:
                    return offset + inner
            offset += self._field_size(field_type, name)
        return None

    def id_positions(self) -> list[int]:
        """Byte positions of every collision object's id, in chunk order."""
        positions: list[int] = []
        cache: dict[int, int | None] = {}
        for chunk in self.chunks:
            if chunk.code == b"DNA1" or not 0 <= chunk.struct_index < len(self.dna.struct_types):
                continue
            type_index = self.dna.struct_types[chunk.struct_index]
            if type_index not in cache:
                cache[type_index] = self.id_offset(type_index)
            inner = cache[type_index]
            if inner is None:
                continue
            size = self.dna.sizes[type_index]
            positions.extend(chunk.data_offset + i * size + inner for i in range(chunk.count))
        return positions


def collision_object_ids(blob: bytes) -> list[int]:
    """The broadphase unique ids of the collision objects a ``.bullet`` file holds, in order.

    Raises:
        ValueError: If the bytes are not a readable ``.bullet`` file.
    """
    parsed = _BulletFile(blob)
    fmt = parsed.endian + "i"
    return [struct.unpack_from(fmt, blob, p)[0] for p in parsed.id_positions()]


def with_collision_object_ids(blob: bytes, ids: Sequence[int]) -> bytes:
    """``blob`` with its collision objects' ids replaced by ``ids`` (in order).

    Raises:
        ValueError: If the file holds another number of collision objects than ``ids``.
    """
    parsed = _BulletFile(blob)
    positions = parsed.id_positions()
    if len(positions) != len(ids):
        raise ValueError(
            f"the state holds {len(positions)} collision objects, the world {len(ids)}"
        )
    patched = bytearray(blob)
    fmt = parsed.endian + "i"
    for position, value in zip(positions, ids, strict=True):
        struct.pack_into(fmt, patched, position, value)
    return bytes(patched)
