"""The sandbox's wire format: JSON headers and raw ``.npy`` arrays over a pipe, nothing else.

A message is an 8-byte little-endian length and a UTF-8 JSON object, whose ``"arrays"`` field
counts the arrays that follow, each an 8-byte length and one ``.npy`` payload. Arrays are read
with ``numpy.load(allow_pickle=False)``: the harness never unpickles what a sandboxed process
sends, so a submission can hand back numbers and text, not objects or code. Sizes are capped.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any, BinaryIO

import numpy as np

MAX_HEADER = 1 << 20
MAX_ARRAY = 4 << 30
MAX_ARRAYS = 8


class WireError(ValueError):
    """A malformed or oversized message, or a closed pipe."""


def _read_exact(f: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            raise WireError(f"the pipe closed after {n - left} of {n} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _length(f: BinaryIO, limit: int, what: str) -> int:
    (n,) = struct.unpack("<Q", _read_exact(f, 8))
    if n > limit:
        raise WireError(f"{what} of {n} bytes is over the limit of {limit}")
    return n


def send(f: BinaryIO, header: dict[str, Any], arrays: tuple[np.ndarray, ...] = ()) -> None:
    """Writes one message (``header`` must be JSON-serialisable; arrays must not be object arrays)."""
    body = json.dumps({**header, "arrays": len(arrays)}).encode()
    parts = [struct.pack("<Q", len(body)), body]
    for a in arrays:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
        parts += [struct.pack("<Q", buf.tell()), buf.getvalue()]
    f.write(b"".join(parts))
    f.flush()


def receive(f: BinaryIO) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Reads one message: its header and its arrays.

    Raises:
        WireError: a closed pipe, a size over the limits, bad JSON or a bad array.
    """
    raw = _read_exact(f, _length(f, MAX_HEADER, "a header"))
    try:
        header = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"a header that is not JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), int) or not (
            0 <= header["arrays"] <= MAX_ARRAYS):
        raise WireError(f"a header without a valid array count: {str(header)[:200]}")
    arrays = []
    for _ in range(header.pop("arrays")):
        payload = _read_exact(f, _length(f, MAX_ARRAY, "an array"))
        try:
            arrays.append(np.load(io.BytesIO(payload), allow_pickle=False))
        except (ValueError, OSError, EOFError) as e:
            raise WireError(f"an array that is not a plain .npy payload ({e})") from None
    return header, arrays
