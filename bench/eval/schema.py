"""The results schema as typed, validated, immutable objects (docs/design.md#results-and-reports).

A stored result is JSON (``bench.eval.results`` reads and writes the files); every reader works on
a :class:`Result` instead of string keys. ``Result.from_json(d, where)`` validates as it builds
(a :class:`ResultsError` names ``where`` and the key path: ``"<file>: missing key
'attacks[2].robust_accuracy'"``) and ``to_json()`` gives the dict back: keys this version does
not know are kept in ``extra`` and written back, optional keys absent on disk stay absent, so
``Result.from_json(d).to_json() == d`` for every stored file (tested).

Layout (``schema`` 1)::

    schema, seed, draws (R: independent draws of the defense's randomness)
    protocol: ProtocolRef {name, version, sha256, identity (optional: bench.eval.protocol)}
    defense: DefenseRef {spec, randomized, members, vote}
    data: DataRef {dataset, split, n, indices_sha256, source_sha256}
    clean_accuracy: Stats {mean, std, draws}; base_clean_accuracy (the bare base model's)
    attacks: [AttackEntry {knowledge, attack, name, norm, eps, source, eot, n (images it ran on),
              robust_accuracy, attack_success, eliminated, perturbation, l2_threshold,
              attack_s_per_image; a worst_case ensemble also stages and outcomes}]
    skipped: [Skip {knowledge, reason}] (levels not run, e.g. a source model missing)
    cost: Cost {defense_ms_per_image, batch}
    provenance: Provenance {command; versions, models, wall_time_s, created, code, jobs}
    clean_correct, attacks[i].correct (optional): per-image outcomes, one hex string per draw

Accuracies and rates are fractions in [0, 1]; Linf budgets and perturbations are in /255; ``eps``
is ``None`` for minimum-norm attacks, which then carry their ``l2_threshold``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bench.eval.fields import (HEX64, PROTOCOL_NAME, Reader, ResultsError, as_tuple, is_int, is_nonneg, is_number,
                               is_packed, is_str, json_object, pack_correct, read_json, unpack_correct)
from bench.eval.knowledge import LEVELS, Knowledge

__all__ = ["NORMS", "SCHEMA_VERSION", "AttackEntry", "Cost", "DataRef", "DefenseRef", "Perturbation", "Provenance",
           "ProtocolRef", "Result", "ResultsError", "Skip", "StageOutcome", "Stats", "pack_correct", "read_json",
           "unpack_correct"]

SCHEMA_VERSION = 1
NORMS: tuple[str, ...] = ("linf", "l2")

def _known(obj: Any) -> dict[str, Any]:
    """A part's fields by name, ``extra`` (the unknown keys kept) left out."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "extra"}


@dataclasses.dataclass(frozen=True)
class Stats:
    """A number measured under each of R draws: ``mean``, ``std`` and the per-draw values."""

    mean: float
    std: float
    draws: tuple[float, ...]

    @staticmethod
    def read(r: Reader, key: str, n_draws: int) -> Stats:
        s = r.sub(key)
        mean = s.fraction("mean")
        std = s.get("std", is_nonneg, "a non-negative number")
        per = s.get("draws", lambda v: isinstance(v, list) and all(map(is_number, v)), "a list of numbers")
        if len(per) != n_draws:
            s.fail(s.key("draws"), f"has {len(per)} values but the result says draws = {n_draws}")
        return Stats(mean, std, tuple(per))

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "draws": list(self.draws)}


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """Medians over the successful examples: Linf (in /255), L2 and RMS = L2 / sqrt(D)."""

    linf: float
    l2: float
    rms: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    """One stage of a worst-case ensemble as stored (``bench.eval.metrics.stage_metrics``).

    Attributes:
        attack: the stage's attack spec; ``surrogate``: its gradient (None: gradient-free).
        check: whether it is the convergence check; ``round``: its escalation round (0: none).
        ran: images it attacked; ``broke``: those it broke; ``robust_after``: the robust
            fraction left after it; ``seconds``: its crafting time.
    """

    attack: str
    surrogate: str | None
    check: bool
    ran: int
    broke: int
    robust_after: float
    seconds: float
    round: int = 0
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def read(r: Reader) -> StageOutcome:
        count = lambda v: is_int(v) and v >= 0  # noqa: E731
        return StageOutcome(
            r.get("attack", is_str, "a string"), r.get("surrogate", is_str, "a string", nullable=True),
            r.get("check", lambda v: isinstance(v, bool), "a boolean"), r.get("ran", count, "a count"),
            r.get("broke", count, "a count"), r.fraction("robust_after"),
            r.get("seconds", is_nonneg, "a non-negative number"),
            r.get("round", count, "a count", optional=True) or 0, r.extra())

    def to_json(self) -> dict[str, Any]:
        known = _known(self)
        if not self.round:  # written only for escalation rounds (bench.eval.metrics.Stage)
            del known["round"]
        return json_object(known, self.extra)


@dataclasses.dataclass(frozen=True)
class AttackEntry:
    """One attack's numbers at one knowledge level (``bench.eval.metrics``).

    ``n`` (images it ran on) and ``correct`` (per-image outcomes, one hex string per draw) are
    absent from results written before they existed; ``stages`` and ``outcomes`` are set only
    for a worst-case ensemble.
    """

    knowledge: Knowledge
    attack: str
    name: str
    norm: str
    eps: float | None
    source: str
    eot: int
    robust_accuracy: Stats
    attack_success: float
    eliminated: float | None
    perturbation: Perturbation | None
    l2_threshold: float | None
    attack_s_per_image: float
    n: int | None = None
    correct: tuple[str, ...] | None = None
    stages: tuple[StageOutcome, ...] | None = None
    outcomes: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("n", "correct", "stages", "outcomes")

    @property
    def is_ensemble(self) -> bool:
        """Whether this is a worst-case ensemble (``bench.eval.adaptive``)."""
        return self.stages is not None

    @property
    def robust(self) -> float:
        """Mean robust accuracy over the draws."""
        return self.robust_accuracy.mean

    @staticmethod
    def read(r: Reader, n_draws: int) -> AttackEntry:
        knowledge = Knowledge(r.get("knowledge", lambda v: v in LEVELS, f"one of {', '.join(LEVELS)}"))
        attack = r.get("attack", lambda v: is_str(v) and v.strip() != "", "a non-empty string")
        name = r.get("name", is_str, "a string")
        norm = r.get("norm", lambda v: v in NORMS, f"one of {', '.join(NORMS)}")
        eps = r.get("eps", lambda v: is_number(v) and v > 0, "a positive number", nullable=True)
        source = r.get("source", is_str, "a string")
        eot = r.get("eot", lambda v: is_int(v) and v >= 1, "a positive integer")
        robust = Stats.read(r, "robust_accuracy", n_draws)
        success = r.fraction("attack_success")
        eliminated = r.fraction("eliminated", nullable=True)
        p = r.sub("perturbation", nullable=True)
        pert = None if p is None else Perturbation(
            *(p.get(k, is_nonneg, "a non-negative number") for k in ("linf", "l2", "rms")))
        thr = r.get("l2_threshold", lambda v: is_number(v) and v > 0, "a positive number", nullable=True)
        if eps is None and thr is None:
            r.fail(r.key("l2_threshold"), "must be set for a minimum-norm attack (eps null)")
        seconds = r.get("attack_s_per_image", is_nonneg, "a non-negative number")
        n = r.get("n", lambda v: is_int(v) and v > 0, "a positive integer", optional="correct" not in r.obj)
        correct = None
        if "correct" in r.obj:
            correct = tuple(r.get("correct", is_packed(n, n_draws), f"{n_draws} hex string(s) of {n} bits"))
        stages = None
        if "stages" in r.obj:
            raw = r.get("stages", lambda v: isinstance(v, list), "a list")
            stages = tuple(StageOutcome.read(Reader(r.where, st, f"{r.key('stages')}[{i}]"))
                           for i, st in enumerate(raw))
        outcomes = r.get("outcomes", is_str, "a string", optional=True)
        return AttackEntry(knowledge, attack, name, norm, eps, source, eot, robust, success, eliminated, pert, thr,
                           seconds, n, correct, stages, outcomes, r.extra())

    def to_json(self) -> dict[str, Any]:
        known = _known(self)
        known.update(knowledge=self.knowledge.value, robust_accuracy=self.robust_accuracy.to_json(),
                     perturbation=None if self.perturbation is None else self.perturbation.to_json(),
                     correct=None if self.correct is None else list(self.correct),
                     stages=None if self.stages is None else [st.to_json() for st in self.stages])
        return json_object(known, self.extra, self._OPTIONAL)


@dataclasses.dataclass(frozen=True)
class ProtocolRef:
    """The protocol a result was scored under; ``identity`` is absent from results written before
    protocol identities (``bench.eval.protocol.fingerprint`` then falls back to ``sha256``)."""

    name: str
    version: int
    sha256: str
    identity: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def read(r: Reader) -> ProtocolRef:
        return ProtocolRef(
            r.get("name", lambda v: is_str(v) and PROTOCOL_NAME.fullmatch(v) is not None,
                  "a name of letters, digits, '.', '_', '-'"),
            r.get("version", is_int, "an integer"), r.get("sha256", is_str, "a string"),
            r.get("identity", lambda v: is_str(v) and HEX64.fullmatch(v) is not None, "64 hex digits", optional=True),
            r.extra())

    def to_json(self) -> dict[str, Any]:
        return json_object({"name": self.name, "version": self.version, "sha256": self.sha256,
                            "identity": self.identity}, self.extra, ("identity",))


@dataclasses.dataclass(frozen=True)
class DefenseRef:
    """The defense: its canonical spec, whether it is randomized, its members and their vote."""

    spec: str
    randomized: bool
    members: tuple[str, ...]
    vote: str
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def read(r: Reader) -> DefenseRef:
        return DefenseRef(
            r.get("spec", lambda v: is_str(v) and v.strip() != "", "a non-empty string"),
            r.get("randomized", lambda v: isinstance(v, bool), "a boolean"),
            tuple(r.get("members", lambda v: isinstance(v, list) and len(v) > 0 and all(map(is_str, v)),
                        "a non-empty list of strings")),
            r.get("vote", is_str, "a string"), r.extra())

    def to_json(self) -> dict[str, Any]:
        return json_object({"spec": self.spec, "randomized": self.randomized, "members": list(self.members),
                           "vote": self.vote}, self.extra)


@dataclasses.dataclass(frozen=True)
class DataRef:
    """The images: dataset, split, how many, and hashes of the index set and the source archive."""

    dataset: str
    split: str
    n: int
    indices_sha256: str | None
    source_sha256: str | None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def read(r: Reader) -> DataRef:
        return DataRef(r.get("dataset", is_str, "a string"), r.get("split", is_str, "a string"),
                       r.get("n", lambda v: is_int(v) and v > 0, "a positive integer"),
                       r.get("indices_sha256", is_str, "a string", nullable=True),
                       r.get("source_sha256", is_str, "a string", nullable=True), r.extra())

    def to_json(self) -> dict[str, Any]:
        return json_object({"dataset": self.dataset, "split": self.split, "n": self.n,
                           "indices_sha256": self.indices_sha256, "source_sha256": self.source_sha256}, self.extra)


@dataclasses.dataclass(frozen=True)
class Skip:
    """A knowledge level that was not run, and why (e.g. its source model is missing)."""

    knowledge: Knowledge
    reason: str
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def read(r: Reader) -> Skip:
        return Skip(Knowledge(r.get("knowledge", lambda v: v in LEVELS, f"one of {', '.join(LEVELS)}")),
                    r.get("reason", is_str, "a string"), r.extra())

    def to_json(self) -> dict[str, Any]:
        return json_object({"knowledge": self.knowledge.value, "reason": self.reason}, self.extra)


@dataclasses.dataclass(frozen=True)
class Cost:
    """The defense's preprocessing time per image, timed at batch size ``batch``."""

    defense_ms_per_image: float
    batch: int
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def read(r: Reader) -> Cost:
        return Cost(r.get("defense_ms_per_image", is_nonneg, "a non-negative number"),
                    r.get("batch", lambda v: is_int(v) and v > 0, "a positive integer"), r.extra())

    def to_json(self) -> dict[str, Any]:
        return json_object({"defense_ms_per_image": self.defense_ms_per_image, "batch": self.batch}, self.extra)


@dataclasses.dataclass(frozen=True)
class Provenance:
    """How a result was made: the command, and where recorded the library versions, model hashes,
    defense and attack code hashes, the number of merged job partials, wall time and date; for a
    submission its file (``{path, sha256, trusted}``), and the ``--model`` files it was scored
    with (``[{path, sha256, models}]``), which ``check`` loads again."""

    command: str
    versions: Mapping[str, Any] | None = None
    models: Mapping[str, Any] | None = None
    code: Mapping[str, Any] | None = None
    jobs: int | None = None
    wall_time_s: float | None = None
    created: str | None = None
    submission: Mapping[str, Any] | None = None
    model_files: tuple[Mapping[str, Any], ...] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("versions", "models", "code", "jobs", "wall_time_s", "created",
                                            "submission", "model_files")

    @staticmethod
    def read(r: Reader) -> Provenance:
        mapping = lambda v: isinstance(v, dict)  # noqa: E731
        return Provenance(
            r.get("command", is_str, "a string"), r.get("versions", mapping, "an object", optional=True),
            r.get("models", mapping, "an object", optional=True), r.get("code", mapping, "an object", optional=True),
            r.get("jobs", lambda v: is_int(v) and v > 0, "a positive integer", optional=True),
            r.get("wall_time_s", is_nonneg, "a non-negative number", optional=True),
            r.get("created", is_str, "a string", optional=True),
            r.get("submission", mapping, "an object", optional=True),
            as_tuple(r.get("model_files", lambda v: isinstance(v, list) and all(map(mapping, v)), "a list of objects",
                         optional=True)), r.extra())

    def to_json(self) -> dict[str, Any]:
        known = _known(self)
        known["model_files"] = None if self.model_files is None else list(self.model_files)
        return json_object(known, self.extra, self._OPTIONAL)


@dataclasses.dataclass(frozen=True)
class Result:
    """One defense scored under one protocol: what every reader of stored results works on."""

    schema: int
    protocol: ProtocolRef
    defense: DefenseRef
    data: DataRef
    seed: int
    draws: int
    clean_accuracy: Stats
    attacks: tuple[AttackEntry, ...]
    cost: Cost
    provenance: Provenance
    base_clean_accuracy: float | None = None
    clean_correct: tuple[str, ...] | None = None
    skipped: tuple[Skip, ...] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("base_clean_accuracy", "clean_correct", "skipped")

    @property
    def spec(self) -> str:
        """The defense's canonical spec."""
        return self.defense.spec

    @property
    def randomized(self) -> bool:
        return self.defense.randomized

    def at(self, level: str) -> list[AttackEntry]:
        """The entries at knowledge ``level``, in stored order."""
        return [e for e in self.attacks if e.knowledge == level]

    def entry(self, level: str, attack: str) -> AttackEntry | None:
        """The entry for canonical attack spec ``attack`` at knowledge ``level``, if any."""
        return next((e for e in self.attacks if e.knowledge == level and e.attack == attack), None)

    @staticmethod
    def from_json(d: Any, where: str) -> Result:
        """Validates and reads a results dict.

        Args:
            d: the parsed JSON.
            where: what to call it in errors (usually the file path).

        Raises:
            ResultsError: ``"<where>: missing key 'attacks[2].robust_accuracy'"`` and the like.
        """
        r = Reader(where, d)
        schema = r.get("schema", is_int, "an integer")
        if schema != SCHEMA_VERSION:
            r.fail("schema", f"is {schema}; this version of shieldbench reads schema {SCHEMA_VERSION}")
        protocol, defense, data = ProtocolRef.read(r.sub("protocol")), DefenseRef.read(r.sub("defense")), \
            DataRef.read(r.sub("data"))
        seed = r.get("seed", is_int, "an integer")
        draws = r.get("draws", lambda v: is_int(v) and v >= 1, "a positive integer")
        clean = Stats.read(r, "clean_accuracy", draws)
        base = r.fraction("base_clean_accuracy", optional=True)
        clean_correct = r.get("clean_correct", is_packed(data.n, draws), f"{draws} hex string(s) of {data.n} bits",
                              optional=True)
        raw = r.get("attacks", lambda v: isinstance(v, list), "a list")
        attacks, seen = [], set()
        for i, e in enumerate(raw):
            entry = AttackEntry.read(Reader(where, e, f"attacks[{i}]"), draws)
            if (entry.knowledge, entry.attack) in seen:
                r.fail(f"attacks[{i}].attack", f"repeats {entry.knowledge.value} attack {entry.attack!r}")
            seen.add((entry.knowledge, entry.attack))
            attacks.append(entry)
        skipped = None
        if "skipped" in d:
            raw_skips = r.get("skipped", lambda v: isinstance(v, list), "a list")
            skipped = tuple(Skip.read(Reader(where, s, f"skipped[{i}]")) for i, s in enumerate(raw_skips))
        cost, provenance = Cost.read(r.sub("cost")), Provenance.read(r.sub("provenance"))
        return Result(schema, protocol, defense, data, seed, draws, clean, tuple(attacks), cost, provenance, base,
                      None if clean_correct is None else tuple(clean_correct), skipped, r.extra())

    def to_json(self) -> dict[str, Any]:
        """The JSON dict this result is stored as (``from_json``'s input, unknown keys included)."""
        known = {"schema": self.schema, "protocol": self.protocol.to_json(), "defense": self.defense.to_json(),
                 "data": self.data.to_json(), "seed": self.seed, "draws": self.draws,
                 "clean_accuracy": self.clean_accuracy.to_json(), "attacks": [e.to_json() for e in self.attacks],
                 "cost": self.cost.to_json(), "provenance": self.provenance.to_json(),
                 "base_clean_accuracy": self.base_clean_accuracy,
                 "clean_correct": None if self.clean_correct is None else list(self.clean_correct),
                 "skipped": None if self.skipped is None else [s.to_json() for s in self.skipped]}
        return json_object(known, self.extra, self._OPTIONAL)

    def correct(self, entry: AttackEntry | None = None) -> np.ndarray | None:
        """Per-image outcomes, bool ``[R, n]``: of ``entry``, or the clean ones; None if not stored."""
        rows, n = (self.clean_correct, self.data.n) if entry is None else (entry.correct, entry.n)
        if rows is None or n is None:
            return None
        return unpack_correct(rows, n)
