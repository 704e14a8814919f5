"""Small file helpers shared by the data cache, checkpoints, the zoo and results.

Every file shieldbench writes goes through :func:`atomic_write_bytes`: the bytes land in a
temporary file in the same directory, are flushed to disk, and replace the target in one
``os.replace``, so readers see either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """``$SHIELDBENCH_CACHE`` or ``~/.cache/shieldbench``: decoded data, checkpoints, attacks."""
    return Path(os.environ.get("SHIELDBENCH_CACHE") or Path.home() / ".cache" / "shieldbench")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically, creating parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Writes ``obj`` as indented, key-sorted JSON (stable diffs) atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


STALE_TEMP_S = 3600.0


def probe_writable(directory: str | os.PathLike[str]) -> None:
    """Creates ``directory`` if needed and writes and deletes a small file in it.

    Raises:
        OSError: the directory cannot be created or written (read-only, full, not a directory).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"shieldbench")
            f.flush()
            os.fsync(f.fileno())
    finally:
        Path(tmp).unlink(missing_ok=True)


def sweep_stale_temps(directory: str | os.PathLike[str], max_age_s: float = STALE_TEMP_S) -> list[Path]:
    """Deletes ``atomic_write_bytes`` temporaries older than ``max_age_s`` in ``directory``.

    A writer killed between creating its temporary and renaming it (``kill -9``, a full disk)
    leaves one behind; a live writer's temporary is seconds old, so an hour-old one is stale.
    Returns the files removed (errors are ignored: another sweeper may have won).
    """
    import time

    removed = []
    now = time.time()
    for p in Path(directory).glob(".*.tmp"):
        try:
            if now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


_SHELL_SPECIAL_IN_DOUBLE_QUOTES = set('"$`\\!')


def shell_join(parts: list[str]) -> str:
    """A POSIX shell command line for ``parts``, like ``shlex.join``, but an argument that
    holds single quotes (a spec such as ``fd(preset='code')``) is put in double quotes when
    nothing in it is special there, instead of shlex's ``'fd(preset='"'"'code'"'"')'``."""
    out = []
    for part in parts:
        if "'" in part and not _SHELL_SPECIAL_IN_DOUBLE_QUOTES & set(part):
            out.append(f'"{part}"')
        else:
            out.append(shlex.quote(part))
    return " ".join(out)
