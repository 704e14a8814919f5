"""The results store: one JSON file per (protocol, defense), the source of truth (docs/design.md#results-and-reports).

Files live at ``<root>/<protocol>/<result_filename(spec)>`` where ``root`` defaults to
``leaderboards/results`` in the checkout. The runner produces the dicts; this module
validates, writes, and reads them. Every file is written atomically as indented, key-sorted
JSON with a trailing newline, so re-running a defense gives a clean diff and files produced
by independent jobs merge without conflicts.

The layout (``schema`` 1) and its typed form, :class:`bench.eval.schema.Result`, are in
``bench.eval.schema``: every reader gets a ``Result``; writers hand in a ``Result`` or its JSON
dict, which is validated first.

Per-image outcomes (``pack_correct``) let ``check`` say which images flipped; results written
before they existed lack them and are compared by their numbers alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from bench.core.io import atomic_write_json
from bench.eval.knowledge import LEVELS
from bench.eval.schema import NORMS, SCHEMA_VERSION, AttackEntry, Result, ResultsError, pack_correct, unpack_correct

__all__ = ["KNOWLEDGE_LEVELS", "NORMS", "SCHEMA_VERSION", "AttackEntry", "Result", "ResultsError", "attack_entry",
           "canonical_attack", "load_result", "load_results", "pack_correct", "protocols_with_results",
           "result_filename", "result_path", "results_root", "save_result", "unpack_correct", "validate_result"]

KNOWLEDGE_LEVELS: tuple[str, ...] = LEVELS  # bench.eval.knowledge.Knowledge


@functools.cache
def canonical_attack(spec: str) -> str:
    """The name results store for an attack spec (defaults left out: ``cw_l2()``, ``ifgsm(eps=4)``)."""
    from attacks import build_attack

    return repr(build_attack(spec))


def attack_entry(result: Result | None, level: str, spec: str) -> AttackEntry | None:
    """The entry of ``result`` for attack ``spec`` (any spelling) at knowledge ``level``, if any."""
    return None if result is None else result.entry(level, canonical_attack(spec))


def results_root() -> Path:
    """Default results directory: ``<checkout>/leaderboards/results``."""
    return Path(__file__).resolve().parents[2] / "leaderboards" / "results"


def result_filename(spec: str) -> str:
    """A filesystem-safe, deterministic file name for a defense spec.

    A readable lower-case slug of the spec (at most 60 characters) followed by the first 8
    hex digits of the spec's sha256, so distinct specs that slug alike still get distinct
    names: ``"jpeg(quality=75)" -> "jpeg-quality-75-<8 hex>.json"``.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", spec.lower()).strip("-")[:60].strip("-") or "defense"
    digest = hashlib.sha256(spec.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}.json"


def result_path(root: Path, protocol: str, spec: str) -> Path:
    """``root / protocol / result_filename(spec)``."""
    return Path(root) / protocol / result_filename(spec)


def validate_result(result: Any, where: str) -> Result:
    """Checks a results dict against the schema and returns it typed (``Result.from_json``).

    Raises:
        ResultsError: ``"<where>: missing key 'attacks[2].robust_accuracy'"`` and the like.
    """
    return Result.from_json(result, where)


# ------------------------------------------------------------------------------------- storage
def save_result(root: Path, result: Result | dict[str, Any]) -> Path:
    """Validates ``result`` and writes it atomically to its place under ``root``; returns the path.

    Raises:
        ResultsError: the dict does not follow the schema (nothing is written).
    """
    if not isinstance(result, Result):
        try:
            where = f"result of {result['defense']['spec']!r} under {result['protocol']['name']!r}"
        except (TypeError, KeyError):
            where = "result to save"
        result = Result.from_json(result, where)
    path = result_path(Path(root), result.protocol.name, result.spec)
    atomic_write_json(path, result.to_json())
    return path


def load_result(path: Path) -> Result:
    """Reads and validates one results file.

    Raises:
        ResultsError: unreadable file, invalid JSON, or a schema violation (names the file).
    """
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ResultsError(f"{path}: cannot read results file ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from None
    return Result.from_json(result, str(path))


def _result_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if p.is_file() and not p.name.startswith("."))


def load_results(root: Path, protocol: str) -> list[Result]:
    """All results of a protocol, sorted by defense spec; ``[]`` when there are none.

    Raises:
        ResultsError: a file is invalid, belongs to another protocol, or repeats a defense.
    """
    directory = Path(root) / protocol
    if not directory.is_dir():
        return []
    by_spec: dict[str, tuple[Path, Result]] = {}
    for path in _result_files(directory):
        result = load_result(path)
        name = result.protocol.name
        if name != protocol:
            raise ResultsError(f"{path}: result of protocol {name!r} in the directory of protocol {protocol!r}")
        spec = result.spec
        if spec in by_spec:
            raise ResultsError(f"{path}: defense {spec!r} already has results in {by_spec[spec][0]}")
        by_spec[spec] = (path, result)
    return [by_spec[spec][1] for spec in sorted(by_spec)]


def protocols_with_results(root: Path) -> list[str]:
    """Names of the protocol directories under ``root`` that hold at least one results file."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and _result_files(d))
