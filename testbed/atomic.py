"""Atomic file writes: a temporary file in the same folder, fsync, then `os.replace`.

Every file the testbed writes for others to read (episode records, trial markers and tables,
report documents, figures, CSV and Parquet tables) goes through `atomic_write`, so a writer
killed midway leaves the previous file (or none) under the final name, never a partial one.
A leaf module: it imports nothing from the testbed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` atomically: ``write`` fills a temporary file, which then replaces ``path``.

    Args:
        path: The final file; its folder is created if needed.
        write: Called once with the temporary file, open for binary writing.

    Returns:
        ``path``.

    Raises:
        OSError: ``cannot write <path>: <reason>`` (same errno and subclass as the cause: a full
            disk, an unwritable folder); the file under ``path`` is then unchanged. Any other
            exception of ``write`` propagates unchanged, with the same guarantee.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from exc
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """`atomic_write` of ``data``; returns the path."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    """`atomic_write` of UTF-8 ``text``; returns the path."""
    return atomic_write_bytes(path, text.encode())


def _cannot_write(path: Path, error: OSError) -> OSError:
    reason = error.strerror or str(error)
    if error.errno is None:
        return OSError(f"cannot write {path}: {reason}")
    return OSError(error.errno, f"cannot write {path}: {reason}")  # a PermissionError etc.
