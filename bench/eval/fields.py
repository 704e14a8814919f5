"""Reading JSON objects key by key for the results schema (``bench.eval.schema``), with errors
that name the file and the key path (``"<file>: missing key 'attacks[2].robust_accuracy'"``).

``Reader`` checks each key it reads and remembers which it read, so the unknown ones can be kept
(``Reader.extra``) and written back (``json_object``). Per-image outcome bitmaps are packed here
too (``pack_correct``: one hex string per draw, bit i = image i).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import numpy as np

_T = TypeVar("_T")
PROTOCOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX = re.compile(r"[0-9a-f]*")


def pack_correct(correct: np.ndarray) -> list[str]:
    """Per-image outcomes as stored: bool ``[R, n]`` -> one hex string per draw (bit i = image i)."""
    rows = np.atleast_2d(np.asarray(correct, dtype=bool))
    return [np.packbits(row).tobytes().hex() for row in rows]


def unpack_correct(rows: list[str] | tuple[str, ...], n: int) -> np.ndarray:
    """The inverse of :func:`pack_correct`: bool ``[R, n]``."""
    return np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(r), np.uint8))[:n].astype(bool) for r in rows])


class ResultsError(Exception):
    """A results file or dict is unreadable or does not follow the schema."""


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_str(v: Any) -> bool:
    return isinstance(v, str)


def is_nonneg(v: Any) -> bool:
    return is_number(v) and v >= 0


def is_packed(n: int, draws: int) -> Callable[[Any], bool]:
    """A check for ``draws`` hex strings of ``n`` bits each (``bench.eval.results.pack_correct``)."""
    chars = 2 * ((n + 7) // 8)
    return lambda v: (isinstance(v, list) and len(v) == draws
                      and all(isinstance(r, str) and len(r) == chars and HEX.fullmatch(r) is not None for r in v))


class Reader:
    """Reads one JSON object's keys, checking each; errors name ``where`` and the key path."""

    def __init__(self, where: str, obj: Any, path: str = ""):
        self.where, self.path = where, path
        if not isinstance(obj, dict):
            self.fail(path or "result", f"must be an object, got {obj!r}" if path else
                      f"must be a JSON object, got {type(obj).__name__}")
        self.obj: dict[str, Any] = obj
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ResultsError(f"{self.where}: {problem} {key!r}" if problem.startswith("missing")
                           else f"{self.where}: {key!r} {problem}")

    def get(self, key: str, ok: Callable[[Any], bool], what: str, nullable: bool = False,
            optional: bool = False) -> Any:
        self.used.add(key)
        if key not in self.obj:
            if optional:
                return None
            self.fail(self.key(key), "missing key")
        value = self.obj[key]
        if value is None and nullable:
            return None
        if not ok(value):
            self.fail(self.key(key), f"must be {what}{' or null' if nullable else ''}, got {value!r}")
        return value

    def fraction(self, key: str, nullable: bool = False, optional: bool = False) -> float | None:
        value = self.get(key, is_number, "a number", nullable, optional)
        if value is not None and not 0.0 <= value <= 1.0:
            self.fail(self.key(key), f"must be a fraction in [0, 1], got {value!r}")
        return value

    def sub(self, key: str, nullable: bool = False) -> Reader | None:
        value = self.get(key, lambda v: isinstance(v, dict), "an object", nullable)
        return None if value is None else Reader(self.where, value, self.key(key))

    def extra(self) -> Mapping[str, Any]:
        """The keys not read: kept as they are and written back."""
        return {k: v for k, v in self.obj.items() if k not in self.used}


def as_tuple(v: list[Any] | None) -> tuple[Any, ...] | None:
    return None if v is None else tuple(v)


def read_json(cls: type[_T], d: Any, where: str, path: str = "") -> _T:
    """One part of a result (``ProtocolRef``, ``DefenseRef``, ``DataRef``, ``Skip``, ...) read
    from its JSON object, validated; errors name ``where`` and ``path``."""
    return cls.read(Reader(where, d, path))  # type: ignore[attr-defined]


def json_object(known: dict[str, Any], extra: Mapping[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object: the known keys (optional ones only when set) and the kept unknown ones."""
    return {**extra, **{k: v for k, v in known.items() if not (k in optional and v is None)}}
