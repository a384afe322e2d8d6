"""Atomic file writes: a temporary file in the same folder, then one rename.

A kill at any moment leaves either the old file or the complete new one, never half of one. The
temporary name starts with a dot, so that hidd.imageio.list_images never picks one up.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_args):
    """Open a temporary file for writing (mode 'w' or 'wb'; open_args go to os.fdopen, e.g. encoding);
    on a clean exit it is synced and renamed to `path`, on an error it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would make it: mkstemp's are private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # (the only way to read it is to set it)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str, *, errors: str = "strict") -> None:
    """Write UTF-8 text atomically; errors='surrogateescape' writes back file names that are not UTF-8."""
    with atomic_write(path, "w", encoding="utf-8", errors=errors, newline="") as f:
        f.write(text)
