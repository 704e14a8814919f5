"""Merging partial results (``bench.eval.jobs``) into one ``Result`` per defense (docs/design.md#jobs-and-merging).

The result of an unsplit run is made here too, from its single partial: merged and unsplit
numbers are computed by the same code from the same per-image records. Merging is
deterministic (records are put in the protocol's image order; duplicates must agree) and
strict: a missing shard, an image covered twice with different outcomes, or partials made
with another protocol identity (bench.eval.protocol), data, seed, draw count or package versions raise
:class:`bench.eval.jobs.MergeError` naming the files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from attacks.specs import build_attack
from bench.eval.jobs import MergeError, Partial, PartialHeader
from bench.eval.metrics import (COST_BATCH, AttackRecords, CleanRecords, attack_metrics, clean_metrics, concat_attack,
                           concat_clean, select)
from bench.eval.protocol import Protocol, fingerprint, same_protocol
from bench.eval.results import KNOWLEDGE_LEVELS, SCHEMA_VERSION, pack_correct
from bench.eval.schema import Result, Skip

_PROVENANCE = ("models", "wall_time_s", "created", "command")


def _same(a: CleanRecords | AttackRecords, b: CleanRecords | AttackRecords) -> bool:
    fields = ("positions", "correct", "base_correct") if isinstance(a, CleanRecords) else (
        "positions", "success", "l2", "linf", "correct")
    if isinstance(a, AttackRecords):
        if a.info != b.info or (a.base_fooled is None) != (b.base_fooled is None):
            return False
        if a.base_fooled is not None and not np.array_equal(a.base_fooled, b.base_fooled):
            return False
        if (a.outcome is None) != (b.outcome is None) or (a.outcome is not None
                                                            and not np.array_equal(a.outcome, b.outcome)):
            return False
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def _combine(chunks: list[tuple[Any, str]], canonical: np.ndarray, what: str) -> Any:
    """Puts disjoint record chunks together in ``canonical`` position order.

    Identical chunks (a job run twice) count once; anything else that covers an image twice,
    or leaves an image uncovered, raises MergeError.
    """
    kept: dict[tuple[int, ...], tuple[Any, str]] = {}
    for rec, source in chunks:
        k = tuple(rec.positions.tolist())
        if k in kept:
            if not _same(rec, kept[k][0]):
                raise MergeError(f"{what}: {source} and {kept[k][1]} disagree on the same images")
            continue
        kept[k] = (rec, source)
    recs = [r for r, _ in kept.values()]
    if not recs:
        raise MergeError(f"{what}: no partial has it (run its jobs first)")
    merged = concat_clean(recs) if isinstance(recs[0], CleanRecords) else concat_attack(recs)
    uniq, counts = np.unique(merged.positions, return_counts=True)
    if (counts > 1).any():
        twice = uniq[counts > 1]
        owners = sorted({s for r, s in kept.values() if np.isin(r.positions, twice).any()})
        raise MergeError(f"{what}: {len(twice)} image(s) covered by more than one partial with different "
                         f"shards ({', '.join(owners)})")
    missing = np.setdiff1d(canonical, merged.positions)
    if len(missing) or len(uniq) != len(canonical):
        raise MergeError(f"{what}: {len(missing)} of {len(canonical)} images are in no partial "
                         f"(a shard is missing; first missing position {int(missing[0]) if len(missing) else '?'})")
    rank = {int(p): i for i, p in enumerate(canonical)}
    return select(merged, np.argsort([rank[int(p)] for p in merged.positions], kind="stable"))


def _consistent_header(partials: Sequence[Partial]) -> PartialHeader:
    """The partials' shared header; the protocol part is checked apart (``same_protocol``), so
    jobs run before and after a comment edit of the protocol file merge."""
    first = partials[0]
    for p in partials[1:]:
        for f in dataclasses.fields(PartialHeader):
            value, other = getattr(first.header, f.name), getattr(p.header, f.name)
            if f.name != "protocol" and other != value:
                raise MergeError(f"{p.source} and {first.source} differ in {f.name!r} "
                                 f"({other!r} vs {value!r}): they cannot be merged")
    return first.header


def result_from_partials(protocol: Protocol, partials: Sequence[Partial]) -> Result:
    """The result (``bench.eval.schema``) of one defense from its partials, validated.

    Raises:
        MergeError: no partials, partials of different runs, or missing / conflicting records.
    """
    if not partials:
        raise MergeError(f"no partial results to merge for protocol {protocol.name}")
    header = _consistent_header(partials)
    spec = header.defense.spec
    for p in partials:
        if not same_protocol(p.header.protocol.to_json(), protocol):
            kind, was = fingerprint(p.header.protocol.to_json())
            raise MergeError(f"{p.source}: made with another version of protocol {protocol.name} "
                             f"({kind} {was[:12]}, the file here has {kind} {protocol.header()[kind][:12]})")
    clean = _combine([(p.clean, p.source) for p in partials], np.arange(protocol.n), f"{spec}: clean images")
    skipped: dict[str, Skip] = {}
    for p in partials:
        for s in p.skipped:
            skipped.setdefault(s.knowledge.value, s)
    entries, expected = [], set()
    for level in KNOWLEDGE_LEVELS:
        for plan in protocol.attacks_at(level):
            key = (level, repr(build_attack(plan.spec)))
            expected.add(key)
            chunks = [(r, p.source) for p in partials for r in p.attacks if r.key == key]
            if level in skipped:
                if chunks:
                    raise MergeError(f"{spec}: {level} was skipped by one job ({skipped[level].reason}) "
                                     f"but run by {chunks[0][1]}")
                continue
            rec = _combine(chunks, protocol.positions(plan), f"{spec}: {level} {key[1]}")
            entries.append({**rec.info.to_json(), **attack_metrics(rec), "correct": pack_correct(rec.correct)})
    extra = {r.key for p in partials for r in p.attacks} - expected
    if extra:
        raise MergeError(f"{spec}: partials hold attacks the protocol does not have: {sorted(extra)}")
    models: dict[str, str] = {}
    for p in partials:
        for name, sha in p.provenance["models"].items():
            if models.setdefault(name, sha) != sha:
                raise MergeError(f"{p.source}: model {name} has weights {sha[:12]}, another partial {models[name][:12]}")
    first = partials[0].provenance
    provenance = {k: v for k, v in first.items() if k not in _PROVENANCE}
    provenance.update(versions=dict(header.versions), models=dict(sorted(models.items())),
                      wall_time_s=float(sum(p.provenance["wall_time_s"] for p in partials)),
                      created=max(p.provenance["created"] for p in partials), command=first["command"],
                      jobs=len(partials))
    return Result.from_json({
        "schema": SCHEMA_VERSION, "protocol": protocol.header(), "defense": header.defense.to_json(),
        "data": header.data.to_json(), "seed": header.seed, "draws": header.draws, **clean_metrics(clean),
        "clean_correct": pack_correct(clean.correct), "attacks": entries,
        "skipped": [skipped[k].to_json() for k in KNOWLEDGE_LEVELS if k in skipped],
        "cost": {"defense_ms_per_image": float(np.median([p.cost_ms for p in partials])), "batch": COST_BATCH},
        "provenance": provenance,
    }, f"the merged result of {spec!r} under {protocol.name!r}")


def merge_partials(protocol: Protocol, partials: Sequence[Partial]) -> list[Result]:
    """Results of every defense that has partials, sorted by defense spec."""
    by_spec: dict[str, list[Partial]] = {}
    for p in partials:
        by_spec.setdefault(p.header.defense.spec, []).append(p)
    return [result_from_partials(protocol, by_spec[s]) for s in sorted(by_spec)]
