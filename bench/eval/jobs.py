"""Protocols split into independent jobs (defense x attack x shard) and merged (docs/design.md#jobs-and-merging).

A *job* scores one defense on one shard of the protocol's images, for all of its attacks or a
selection of them (``shieldbench run --shard K/N --attack SPEC --knowledge LEVEL``). It
writes a *partial*: a JSON file of per-image records (``bench.eval.metrics``), not numbers.
``shieldbench merge`` gathers the partials of a defense, checks that they belong together
(same protocol identity, data, seed, draws, package versions), that every image of every attack
is covered exactly once (a shard run twice must agree with itself), and computes the result
from the concatenated records with the same functions an unsplit run uses. Shards are
contiguous blocks of the protocol's batches, crafted and scored with the keys an unsplit run
gives those batches, so merged numbers equal the unsplit run's, whatever the split; only
timings differ (the merged defense cost is the median over jobs, wall time the sum).

Files: ``<dir>/<protocol>/<defense slug>/shard-K-of-N[-<selection hash>].json``, written
atomically; merging reads every ``*.json`` under ``<dir>/<protocol>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.io import atomic_write_json, cache_root, shell_join
from bench.eval.metrics import AttackInfo, AttackRecords, CleanRecords, Stage, outcome_string, parse_outcomes
from bench.eval.protocol import Protocol
from bench.eval.results import KNOWLEDGE_LEVELS, result_filename
from bench.eval.schema import DataRef, DefenseRef, ProtocolRef, ResultsError, Skip, read_json

PARTIAL_KIND = "shieldbench-partial"
PARTIAL_SCHEMA = 1


class MergeError(ValueError):
    """Partials that cannot be merged: missing, overlapping or inconsistent (names the files)."""


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: a contiguous block of a list's batches."""

    index: int = 1
    count: int = 1

    def __post_init__(self):
        if not (self.count >= 1 and 1 <= self.index <= self.count):
            raise ValueError(f"shard {self.index}/{self.count}: want 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` -> ``Shard(2, 8)``."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise ValueError(f"shard {text!r}: want K/N, e.g. 2/8 (K counts from 1)")
        return cls(int(m.group(1)), int(m.group(2)))

    def units(self, total: int) -> range:
        """The block of ``range(total)`` this shard covers (balanced; possibly empty)."""
        return range((self.index - 1) * total // self.count, self.index * total // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which attacks a job runs: attack specs and knowledge levels (empty: all)."""

    attacks: tuple[str, ...] = ()
    knowledge: tuple[str, ...] = ()

    def __post_init__(self):
        bad = [k for k in self.knowledge if k not in KNOWLEDGE_LEVELS]
        if bad:
            raise ValueError(f"unknown knowledge level(s) {bad}; known: {', '.join(KNOWLEDGE_LEVELS)}")

    def check(self, protocol: Protocol) -> None:
        """Raises ValueError naming an attack spec the protocol does not have."""
        specs = [a.spec for a in protocol.attacks]
        for s in self.attacks:
            if s not in specs:
                raise ValueError(f"protocol {protocol.name} has no attack {s!r}; its attacks: {', '.join(specs)}")

    def wants(self, knowledge: str, spec: str) -> bool:
        return (not self.attacks or spec in self.attacks) and (not self.knowledge or knowledge in self.knowledge)

    @property
    def tag(self) -> str:
        """'' for everything, else a short hash of the selection (part of the file name)."""
        if not self.attacks and not self.knowledge:
            return ""
        text = json.dumps([sorted(self.attacks), sorted(self.knowledge)])
        return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclasses.dataclass(frozen=True)
class PartialHeader:
    """The context a job's records must be merged in: partials merge only when all but the
    protocol agree (the protocol is matched by identity, ``bench.eval.protocol.same_protocol``)."""

    protocol: ProtocolRef
    defense: DefenseRef
    data: DataRef
    seed: int
    draws: int
    versions: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol.to_json(), "defense": self.defense.to_json(), "data": self.data.to_json(),
                "seed": self.seed, "draws": self.draws, "versions": dict(self.versions)}

    @staticmethod
    def from_json(d: dict[str, Any], where: str) -> PartialHeader:
        """Reads the header keys of a partial file (``ResultsError`` naming ``where`` and the key)."""
        if not isinstance(d.get("seed"), int) or not isinstance(d.get("draws"), int) or not isinstance(
                d.get("versions"), dict):
            raise ValueError("seed and draws must be integers and versions an object")
        return PartialHeader(read_json(ProtocolRef, d.get("protocol"), where, "protocol"),
                             read_json(DefenseRef, d.get("defense"), where, "defense"),
                             read_json(DataRef, d.get("data"), where, "data"), d["seed"], d["draws"], d["versions"])


@dataclasses.dataclass(frozen=True)
class Partial:
    """What one job found: per-image records plus the context they must be merged in."""

    header: PartialHeader
    shard: Shard
    selection: Selection
    clean: CleanRecords
    attacks: list[AttackRecords]
    skipped: tuple[Skip, ...]
    cost_ms: float
    provenance: dict[str, Any]  # models, wall_time_s, created, command, code
    source: str = "(in memory)"


# ------------------------------------------------------------------------------ serialization
def _bits(a: np.ndarray) -> str:
    return "".join("1" if v else "0" for v in np.asarray(a, bool).ravel())


def _unbits(s: str, shape: tuple[int, ...]) -> np.ndarray:
    if len(s) != int(np.prod(shape)) or set(s) - {"0", "1"}:
        raise ValueError(f"bit string of length {len(s)} does not fit shape {shape}")
    return (np.frombuffer(s.encode(), np.uint8) == ord("1")).reshape(shape)


def partial_to_json(p: Partial) -> dict[str, Any]:
    """A JSON-able dict holding ``p`` exactly (floats as float64 reprs, booleans as bit strings)."""
    def attack(r: AttackRecords) -> dict[str, Any]:
        return {"info": r.info.to_json(), "dim": r.dim, "positions": r.positions.tolist(), "success": _bits(r.success),
                "l2": r.l2.tolist(), "linf": r.linf.tolist(), "correct": [_bits(row) for row in r.correct],
                "base_fooled": None if r.base_fooled is None else _bits(r.base_fooled), "seconds": r.seconds,
                **({} if r.outcome is None else {"outcome": outcome_string(r.outcome),
                                                 "stages": [st.to_json() for st in r.stages]})}

    return {"kind": PARTIAL_KIND, "schema": PARTIAL_SCHEMA, **p.header.to_json(),
            "shard": [p.shard.index, p.shard.count],
            "selection": {"attacks": list(p.selection.attacks), "knowledge": list(p.selection.knowledge)},
            "clean": {"positions": p.clean.positions.tolist(), "correct": [_bits(r) for r in p.clean.correct],
                      "base_correct": _bits(p.clean.base_correct)},
            "attacks": [attack(r) for r in p.attacks], "skipped": [s.to_json() for s in p.skipped],
            "cost_ms": p.cost_ms,
            "provenance": p.provenance}


def partial_from_json(d: dict[str, Any], source: str) -> Partial:
    """Inverse of :func:`partial_to_json`; raises MergeError naming ``source`` on a bad file."""
    try:
        if d.get("kind") != PARTIAL_KIND or d.get("schema") != PARTIAL_SCHEMA:
            raise ValueError(f"not a {PARTIAL_KIND} file of schema {PARTIAL_SCHEMA}")
        draws = int(d["draws"])

        def attack(a: dict[str, Any]) -> AttackRecords:
            n = len(a["positions"])
            return AttackRecords(AttackInfo.from_json(a["info"]), int(a["dim"]),
                                 np.asarray(a["positions"], np.int64).reshape(n),
                                 _unbits(a["success"], (n,)), np.asarray(a["l2"], np.float64).reshape(n),
                                 np.asarray(a["linf"], np.float64).reshape(n), _rows(a["correct"], draws, n),
                                 None if a["base_fooled"] is None else _unbits(a["base_fooled"], (n,)),
                                 float(a["seconds"]), _outcome(a.get("outcome"), n),
                                 tuple(Stage.from_json(st) for st in a.get("stages", [])))

        c = d["clean"]
        n = len(c["positions"])
        clean = CleanRecords(np.asarray(c["positions"], np.int64).reshape(n), _rows(c["correct"], draws, n),
                             _unbits(c["base_correct"], (n,)))
        header = PartialHeader.from_json(d, source)
        sel = d["selection"]
        skipped = tuple(read_json(Skip, s, source, f"skipped[{i}]") for i, s in enumerate(d["skipped"]))
        return Partial(header, Shard(*d["shard"]), Selection(tuple(sel["attacks"]), tuple(sel["knowledge"])), clean,
                       [attack(a) for a in d["attacks"]], skipped, float(d["cost_ms"]), dict(d["provenance"]), source)
    except ResultsError as e:
        raise MergeError(f"not a valid partial result: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise MergeError(f"{source}: not a valid partial result ({type(e).__name__}: {e})") from None


def _outcome(text: str | None, n: int) -> np.ndarray | None:
    if text is None:
        return None
    if not isinstance(text, str) or len(text) != n:
        raise ValueError(f"outcome string of length {len(text) if isinstance(text, str) else '?'} for {n} images")
    return parse_outcomes(text)


def _rows(rows: list[str], draws: int, n: int) -> np.ndarray:
    if len(rows) != draws:
        raise ValueError(f"{len(rows)} rows of predictions for {draws} draws")
    return np.stack([_unbits(r, (n,)) for r in rows]) if draws else np.zeros((0, n), bool)


def partials_dir(root: str | Path | None = None) -> Path:
    """``root``, or by default ``<cache>/partials``."""
    return Path(root) if root else cache_root() / "partials"


def partial_path(root: Path, p: Partial) -> Path:
    slug = result_filename(p.header.defense.spec)[: -len(".json")]
    tag = f"-{p.selection.tag}" if p.selection.tag else ""
    return Path(root) / p.header.protocol.name / slug / f"shard-{p.shard.index}-of-{p.shard.count}{tag}.json"


def save_partial(root: Path, p: Partial) -> Path:
    """Writes ``p`` atomically under ``root``; returns the path."""
    path = partial_path(root, p)
    atomic_write_json(path, partial_to_json(p))
    return path


def load_partials(root: Path, protocol: str) -> list[Partial]:
    """Every partial under ``root/protocol`` (sorted by path)."""
    out = []
    for path in sorted((Path(root) / protocol).rglob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MergeError(f"{path}: cannot read partial result ({e})") from None
        out.append(partial_from_json(d, str(path)))
    return out


def job_argvs(protocol: Protocol, specs: list[str], shards: int = 1, split_attacks: bool = False,
              partials: str | None = None, models: list[str] = ()) -> list[list[str]]:
    """One ``shieldbench run`` argv per job, for a job array.

    Jobs are ordered by defense, then attack, then shard. With ``split_attacks`` every
    (attack, knowledge level) of the protocol is its own job; otherwise a job runs all attacks.
    ``models`` (``["--model", FILE, ...]``) is added to every job that needs a user's model.
    """
    selections = [Selection()]
    if split_attacks:
        selections = [Selection((a.spec,), (k,)) for k in KNOWLEDGE_LEVELS for a in protocol.attacks_at(k)]
    out = []
    for spec in specs:
        for sel in selections:
            for k in range(1, shards + 1):
                cmd = ["shieldbench", "run", "--protocol", protocol.name, "--defense", spec, "--shard", f"{k}/{shards}"]
                for a in sel.attacks:
                    cmd += ["--attack", a]
                for level in sel.knowledge:
                    cmd += ["--knowledge", level]
                if partials:
                    cmd += ["--partials", partials]
                out.append(cmd + list(models))
    return out


def job_commands(protocol: Protocol, specs: list[str], shards: int = 1, split_attacks: bool = False,
                 partials: str | None = None, models: list[str] = ()) -> list[str]:
    """``job_argvs`` as shell command lines (one per job)."""
    return [shell_join(cmd) for cmd in job_argvs(protocol, specs, shards, split_attacks, partials, models)]
