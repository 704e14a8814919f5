"""The results store: one JSON file per (protocol, defense), the source of truth (docs/design.md#results-and-reports).

Files live at ``<root>/<protocol>/<result_filename(spec)>`` where ``root`` defaults to
``leaderboards/results`` in the checkout. The runner produces the dicts; this module
validates, writes, and reads them. Every file is written atomically as indented, key-sorted
JSON with a trailing newline, so re-running a defense gives a clean diff and files produced
by independent jobs merge without conflicts.

Layout of a result (``schema`` 1; extra keys are allowed and kept)::

    schema, seed, draws (R: independent draws of the defense's randomness)
    protocol: {name, version, sha256, identity (optional: bench.eval.protocol)}
    defense: {spec, randomized, members, vote}
    data: {dataset, split, n, indices_sha256, source_sha256}
    clean_accuracy: {mean, std, draws}; base_clean_accuracy (the bare base model's)
    attacks: [{knowledge, attack, name, norm, eps, source, eot, n (images it ran on),
               robust_accuracy, attack_success, eliminated, perturbation, l2_threshold,
               attack_s_per_image; a worst_case ensemble also stages and outcomes}]
    skipped: [{knowledge, reason}] (levels not run, e.g. a source model missing)
    cost: {defense_ms_per_image, batch}
    provenance: {versions, models, wall_time_s, created, command; code (defense and attack
                 code hashes), jobs (partials merged)}
    clean_correct, attacks[i].correct (optional): per-image outcomes, one string per draw

Per-image outcomes (``pack_correct``) let ``check`` say which images flipped; results written
before they existed lack them and are compared by their numbers alone. Accuracies and rates are fractions in [0, 1]; Linf budgets and perturbations are in /255;
``eps`` is ``null`` for minimum-norm attacks, which then carry their ``l2_threshold``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from bench.core.io import atomic_write_json
from bench.eval.knowledge import LEVELS

SCHEMA_VERSION = 1
KNOWLEDGE_LEVELS: tuple[str, ...] = LEVELS  # bench.eval.knowledge.Knowledge
NORMS: tuple[str, ...] = ("linf", "l2")

_PROTOCOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]*")


@functools.cache
def canonical_attack(spec: str) -> str:
    """The name results store for an attack spec (defaults left out: ``cw_l2()``, ``ifgsm(eps=4)``)."""
    from attacks import build_attack

    return repr(build_attack(spec))


def pack_correct(correct: np.ndarray) -> list[str]:
    """Per-image outcomes as stored: bool ``[R, n]`` -> one hex string per draw (bit i = image i)."""
    rows = np.atleast_2d(np.asarray(correct, dtype=bool))
    return [np.packbits(row).tobytes().hex() for row in rows]


def unpack_correct(rows: list[str], n: int) -> np.ndarray:
    """The inverse of :func:`pack_correct`: bool ``[R, n]``."""
    return np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(r), np.uint8))[:n].astype(bool) for r in rows])


def _is_packed(n: int, draws: int) -> Callable[[Any], bool]:
    """A check for ``draws`` hex strings of ``n`` bits each."""
    chars = 2 * ((n + 7) // 8)

    def ok(v: Any) -> bool:
        return (isinstance(v, list) and len(v) == draws
                and all(isinstance(r, str) and len(r) == chars and _HEX.fullmatch(r) is not None for r in v))
    return ok


def attack_entry(result: dict[str, Any] | None, level: str, spec: str) -> dict[str, Any] | None:
    """The entry of ``result`` for attack ``spec`` (any spelling) at knowledge ``level``, if any."""
    if result is None:
        return None
    name = canonical_attack(spec)
    return next((e for e in result["attacks"] if e["knowledge"] == level and e["attack"] == name), None)


class ResultsError(Exception):
    """A results file or dict is unreadable or does not follow the schema."""


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


# ---------------------------------------------------------------------------------- validation
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


class _Checker:
    """Key-path-aware checks that raise :class:`ResultsError` naming the file and the key."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, problem: str) -> NoReturn:
        raise ResultsError(f"{self.where}: {problem} {key!r}" if problem.startswith("missing")
                           else f"{self.where}: {key!r} {problem}")

    def get(self, obj: dict[str, Any], key: str, path: str, ok: Callable[[Any], bool], what: str,
            nullable: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in obj:
            self.fail(full, "missing key")
        value = obj[key]
        if value is None and nullable:
            return None
        if not ok(value):
            self.fail(full, f"must be {what}{' or null' if nullable else ''}, got {value!r}")
        return value

    def section(self, obj: dict[str, Any], key: str, path: str = "", nullable: bool = False) -> dict[str, Any] | None:
        return self.get(obj, key, path, lambda v: isinstance(v, dict), "an object", nullable)

    def fraction(self, obj: dict[str, Any], key: str, path: str, nullable: bool = False) -> float | None:
        value = self.get(obj, key, path, _is_number, "a number", nullable)
        if value is not None and not 0.0 <= value <= 1.0:
            self.fail(f"{path}.{key}", f"must be a fraction in [0, 1], got {value!r}")
        return value

    def stats(self, obj: dict[str, Any], key: str, path: str, draws: int) -> None:
        full = f"{path}.{key}" if path else key
        s = self.section(obj, key, path)
        self.fraction(s, "mean", full)
        self.get(s, "std", full, lambda v: _is_number(v) and v >= 0, "a non-negative number")
        per_draw = self.get(s, "draws", full, lambda v: isinstance(v, list) and all(map(_is_number, v)),
                            "a list of numbers")
        if len(per_draw) != draws:
            self.fail(f"{full}.draws", f"has {len(per_draw)} values but the result says draws = {draws}")


def validate_result(result: dict[str, Any], where: str) -> None:
    """Checks the keys and types of a results dict (extra keys are allowed).

    Args:
        result: the results dict.
        where: what to call it in errors (usually the file path).

    Raises:
        ResultsError: ``"<where>: missing key 'attacks[2].robust_accuracy'"`` and the like.
    """
    c = _Checker(where)
    if not isinstance(result, dict):
        raise ResultsError(f"{where}: a result must be a JSON object, got {type(result).__name__}")
    schema = c.get(result, "schema", "", _is_int, "an integer")
    if schema != SCHEMA_VERSION:
        c.fail("schema", f"is {schema}; this version of shieldbench reads schema {SCHEMA_VERSION}")
    protocol = c.section(result, "protocol")
    c.get(protocol, "name", "protocol", lambda v: _is_str(v) and _PROTOCOL_NAME.fullmatch(v) is not None,
          "a name of letters, digits, '.', '_', '-'")
    c.get(protocol, "version", "protocol", _is_int, "an integer")
    c.get(protocol, "sha256", "protocol", _is_str, "a string")
    if "identity" in protocol:  # absent from results written before protocol identities (bench.eval.protocol)
        c.get(protocol, "identity", "protocol", lambda v: _is_str(v) and _HEX64.fullmatch(v) is not None,
              "64 hex digits")
    defense = c.section(result, "defense")
    c.get(defense, "spec", "defense", lambda v: _is_str(v) and v.strip() != "", "a non-empty string")
    c.get(defense, "randomized", "defense", _is_bool, "a boolean")
    c.get(defense, "members", "defense", lambda v: _is_str_list(v) and len(v) > 0, "a non-empty list of strings")
    c.get(defense, "vote", "defense", _is_str, "a string")
    data = c.section(result, "data")
    c.get(data, "dataset", "data", _is_str, "a string")
    c.get(data, "split", "data", _is_str, "a string")
    c.get(data, "n", "data", lambda v: _is_int(v) and v > 0, "a positive integer")
    c.get(data, "indices_sha256", "data", _is_str, "a string", nullable=True)
    c.get(data, "source_sha256", "data", _is_str, "a string", nullable=True)
    c.get(result, "seed", "", _is_int, "an integer")
    draws = c.get(result, "draws", "", lambda v: _is_int(v) and v >= 1, "a positive integer")
    c.stats(result, "clean_accuracy", "", draws)
    if "clean_correct" in result:
        c.get(result, "clean_correct", "", _is_packed(data["n"], draws), f"{draws} hex string(s) of {data['n']} bits")
    attacks = c.get(result, "attacks", "", lambda v: isinstance(v, list), "a list")
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(attacks):
        p = f"attacks[{i}]"
        if not isinstance(entry, dict):
            c.fail(p, f"must be an object, got {entry!r}")
        knowledge = c.get(entry, "knowledge", p, lambda v: v in KNOWLEDGE_LEVELS,
                          f"one of {', '.join(KNOWLEDGE_LEVELS)}")
        attack = c.get(entry, "attack", p, lambda v: _is_str(v) and v.strip() != "", "a non-empty string")
        if (knowledge, attack) in seen:
            c.fail(f"{p}.attack", f"repeats {knowledge} attack {attack!r}")
        seen.add((knowledge, attack))
        c.get(entry, "name", p, _is_str, "a string")
        c.get(entry, "norm", p, lambda v: v in NORMS, f"one of {', '.join(NORMS)}")
        eps = c.get(entry, "eps", p, lambda v: _is_number(v) and v > 0, "a positive number", nullable=True)
        c.get(entry, "source", p, _is_str, "a string")
        c.get(entry, "eot", p, lambda v: _is_int(v) and v >= 1, "a positive integer")
        c.stats(entry, "robust_accuracy", p, draws)
        c.fraction(entry, "attack_success", p)
        c.fraction(entry, "eliminated", p, nullable=True)
        pert = c.section(entry, "perturbation", p, nullable=True)
        if pert is not None:
            for key in ("linf", "l2", "rms"):
                c.get(pert, key, f"{p}.perturbation", lambda v: _is_number(v) and v >= 0, "a non-negative number")
        thr = c.get(entry, "l2_threshold", p, lambda v: _is_number(v) and v > 0, "a positive number",
                    nullable=True)
        if eps is None and thr is None:
            c.fail(f"{p}.l2_threshold", "must be set for a minimum-norm attack (eps null)")
        c.get(entry, "attack_s_per_image", p, lambda v: _is_number(v) and v >= 0, "a non-negative number")
        if "correct" in entry:
            n = c.get(entry, "n", p, lambda v: _is_int(v) and v > 0, "a positive integer")
            c.get(entry, "correct", p, _is_packed(n, draws), f"{draws} hex string(s) of {n} bits")
    cost = c.section(result, "cost")
    c.get(cost, "defense_ms_per_image", "cost", lambda v: _is_number(v) and v >= 0, "a non-negative number")
    c.get(cost, "batch", "cost", lambda v: _is_int(v) and v > 0, "a positive integer")
    provenance = c.section(result, "provenance")
    c.get(provenance, "command", "provenance", _is_str, "a string")


# ------------------------------------------------------------------------------------- storage
def save_result(root: Path, result: dict[str, Any]) -> Path:
    """Validates ``result`` and writes it atomically to its place under ``root``; returns the path.

    Raises:
        ResultsError: the dict does not follow the schema (nothing is written).
    """
    try:
        where = f"result of {result['defense']['spec']!r} under {result['protocol']['name']!r}"
    except (TypeError, KeyError):
        where = "result to save"
    validate_result(result, where)
    path = result_path(Path(root), result["protocol"]["name"], result["defense"]["spec"])
    atomic_write_json(path, result)
    return path


def load_result(path: Path) -> dict[str, Any]:
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
    validate_result(result, str(path))
    return result


def _result_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if p.is_file() and not p.name.startswith("."))


def load_results(root: Path, protocol: str) -> list[dict[str, Any]]:
    """All results of a protocol, sorted by defense spec; ``[]`` when there are none.

    Raises:
        ResultsError: a file is invalid, belongs to another protocol, or repeats a defense.
    """
    directory = Path(root) / protocol
    if not directory.is_dir():
        return []
    by_spec: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in _result_files(directory):
        result = load_result(path)
        name = result["protocol"]["name"]
        if name != protocol:
            raise ResultsError(f"{path}: result of protocol {name!r} in the directory of protocol {protocol!r}")
        spec = result["defense"]["spec"]
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
