"""The benchmark's metrics, each defined once, computed from per-image records (docs/design.md#metrics).

The runner does not compute numbers directly: it records, per image, what happened (clean
and attacked predictions for each of R draws, the attack's success, the perturbation's
norms), and the metrics below are functions of those records. Records of disjoint image
shards concatenate (``concat``), so a protocol split into jobs (defense x attack x shard,
``bench.eval.jobs``) merges into exactly the numbers one unsplit run gives.

* **clean accuracy**: defended classifier on the clean images; mean and std over R draws
  (R = the protocol's ``draws`` for randomized defenses, else 1);
* **robust accuracy**: defended classifier on the attacked images. A fixed-budget Linf
  attack's output is used whether or not it fooled the crafting model (it is a valid in-budget
  attack on the defense either way); minimum-norm attacks (DeepFool, C&W) count an example as
  attacked only if it succeeded on the crafting model with L2 <= the protocol's
  ``l2_threshold`` (otherwise the clean image is scored) -- the runner applies that rule
  before scoring;
* **attack success**: the attack's own success rate on the crafting model (or defended pipeline):
  Foolbox's success mask for Foolbox attacks, the misclassification APGD, Square and the
  worst-case ensemble report for theirs;
* **eliminated**: among images the bare base model classifies correctly when clean and wrongly
  when attacked, the fraction the defended classifier gets right (gray-box and transfer);
* **perturbation**: medians of Linf (in /255), L2 and RMS = L2/sqrt(D) over the successful
  examples the attack changed (an image already misclassified needs no perturbation);
* **cost**: attack crafting seconds per image (the defense's own time is measured by the runner);
* **worst case** (``worst_case`` ensembles, ``bench.eval.adaptive``): per image, the example of the
  stage that fooled the defense most often under selection draws (fresh keys, not the scoring
  ones), scored like any attack; ``outcome`` says which stage first broke each image (0: the
  clean image was already wrong; -1: it survived every stage), and each stage reports the
  images it ran on, those it broke, and the robust fraction left after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

COST_BATCH = 128
"""Batch size at which a defense's preprocessing cost is timed."""


@dataclasses.dataclass(frozen=True)
class CleanRecords:
    """Per-image clean outcomes of a defense.

    Attributes:
        positions: int ``[n]``, positions in the protocol's index set.
        correct: bool ``[R, n]``, the defended classifier is right (one row per draw).
        base_correct: bool ``[n]``, the bare base model is right.
    """

    positions: np.ndarray
    correct: np.ndarray
    base_correct: np.ndarray


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a worst-case ensemble on a set of images.

    Attributes:
        attack: the stage's attack spec.
        surrogate: the surrogate gradient it used (None for gradient-free attacks).
        check: whether it is the ensemble's convergence check.
        ran: images it attacked (the survivors of the earlier stages).
        seconds: its crafting time.
        round: the escalation round (1, 2, ...; a check) or 0 for every other stage.
    """

    attack: str
    surrogate: str | None
    check: bool
    ran: int
    seconds: float
    round: int = 0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not self.round:  # results written before escalation existed read and write back unchanged
            del out["round"]
        return out

    @staticmethod
    def from_json(d: dict[str, Any]) -> Stage:
        return Stage(str(d["attack"]), d["surrogate"], bool(d["check"]), int(d["ran"]), float(d["seconds"]),
                     int(d.get("round", 0)))


OUTCOME_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Per-image outcome codes in results: the stage that first broke the image (``0``: the clean
image; ``1``: the first attack stage, ...), ``.`` where the image survived every stage."""


def outcome_string(outcome: np.ndarray) -> str:
    """The compact per-image outcome string of an ``outcome`` array (see ``OUTCOME_CHARS``)."""
    return "".join("." if v < 0 else OUTCOME_CHARS[v] for v in np.asarray(outcome).tolist())


def parse_outcomes(text: str) -> np.ndarray:
    """Inverse of :func:`outcome_string`."""
    return np.asarray([-1 if c == "." else OUTCOME_CHARS.index(c) for c in text], np.int8)


@dataclasses.dataclass(frozen=True)
class AttackInfo:
    """What an attack entry is, copied into the result as it is (``bench.eval.schema.AttackEntry``).

    Attributes:
        knowledge: the level it ran at (``bench.eval.knowledge``).
        attack: its canonical spec; ``name``: the spec's name (``pgd``).
        norm: ``linf`` or ``l2``; ``eps``: the Linf budget in /255, None for minimum-norm attacks.
        source: the model it was crafted on (the defense's spec for adaptive attacks).
        eot: EOT samples per gradient.
        l2_threshold: for minimum-norm attacks, the L2 up to which an example counts as attacked.
    """

    knowledge: str
    attack: str
    name: str
    norm: str
    eps: float | None
    source: str
    eot: int
    l2_threshold: float | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> AttackInfo:
        """Reads a stored ``info`` object (``KeyError``/``TypeError`` on a malformed one)."""
        if set(d) != {f.name for f in dataclasses.fields(AttackInfo)}:
            raise KeyError(f"attack info keys {sorted(d)}")
        return AttackInfo(**d)


@dataclasses.dataclass(frozen=True)
class AttackRecords:
    """Per-image outcomes of one attack at one knowledge level.

    Attributes:
        info: what the attack is (``AttackInfo``), copied into the result as it is.
        dim: number of values per image, D (for the RMS perturbation).
        positions: int ``[n]``, positions in the protocol's index set.
        success: bool ``[n]``, the attack's success mask on the crafting model or pipeline.
        l2: float64 ``[n]``, L2 norm of ``x_adv - x`` (pixel values in [0, 1]).
        linf: float64 ``[n]``, Linf norm of ``x_adv - x`` (pixel values in [0, 1]).
        correct: bool ``[R, n]``, the defended classifier is right on the scored image.
        base_fooled: bool ``[n]``, the bare base model is right on the clean image and wrong on
            the scored one; ``None`` for adaptive attacks (no elimination rate).
        seconds: crafting time of these images.
        outcome: int8 ``[n]`` for a worst-case ensemble (see the module docstring), else None.
        stages: for a worst-case ensemble, one ``Stage`` per stage run, else empty.
    """

    info: AttackInfo
    dim: int
    positions: np.ndarray
    success: np.ndarray
    l2: np.ndarray
    linf: np.ndarray
    correct: np.ndarray
    base_fooled: np.ndarray | None
    seconds: float
    outcome: np.ndarray | None = None
    stages: tuple[Stage, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """``(knowledge, attack spec)``: what identifies the entry in a result."""
        return self.info.knowledge, self.info.attack


def draw_stats(per_draw: np.ndarray) -> dict[str, Any]:
    """``{mean, std, draws}`` of per-draw values (population std; 0 for one draw)."""
    draws = [float(v) for v in per_draw]
    return {"mean": float(np.mean(draws)), "std": float(np.std(draws)), "draws": draws}


def clean_metrics(rec: CleanRecords) -> dict[str, Any]:
    """``clean_accuracy`` (draw stats) and ``base_clean_accuracy`` of the records."""
    return {"clean_accuracy": draw_stats(rec.correct.mean(axis=1)),
            "base_clean_accuracy": float(np.mean(rec.base_correct))}


def attack_metrics(rec: AttackRecords) -> dict[str, Any]:
    """The numbers of one attack entry (see the module docstring for their definitions)."""
    n = len(rec.positions)
    eliminated = None
    if rec.base_fooled is not None and rec.base_fooled.any():
        eliminated = float(np.mean(rec.correct[:, rec.base_fooled]))
    pert = None
    changed = rec.success & (rec.l2 > 0)
    if changed.any():
        med_l2 = float(np.median(rec.l2[changed]))
        pert = {"linf": float(np.median(rec.linf[changed])) * 255.0, "l2": med_l2,
                "rms": med_l2 / float(np.sqrt(rec.dim))}
    out = {"n": int(n), "robust_accuracy": draw_stats(rec.correct.mean(axis=1)),
           "attack_success": float(np.mean(rec.success)), "eliminated": eliminated, "perturbation": pert,
           "attack_s_per_image": rec.seconds / n if n else 0.0}
    if rec.outcome is not None:
        out["stages"] = stage_metrics(rec)
        out["outcomes"] = outcome_string(rec.outcome)
    return out


def stage_metrics(rec: AttackRecords) -> list[dict[str, Any]]:
    """Per stage of a worst-case ensemble: images it ran on and broke, and the robust fraction after it.

    "Broke" and "robust after" are judged under the selection draws (``outcome``); the entry's
    ``robust_accuracy`` is the final score under fresh draws.
    """
    n = len(rec.outcome)
    out = []
    for i, st in enumerate(rec.stages, start=1):
        broke = int(np.sum(rec.outcome == i))
        alive = int(np.sum((rec.outcome < 0) | (rec.outcome > i)))
        out.append({**st.to_json(), "broke": broke, "robust_after": alive / n if n else 0.0})
    return out


def _cat(arrays: Sequence[np.ndarray], axis: int = 0) -> np.ndarray:
    return np.concatenate(arrays, axis=axis)


def concat_clean(parts: Sequence[CleanRecords]) -> CleanRecords:
    """The records of disjoint shards as one, in the given order."""
    return CleanRecords(_cat([p.positions for p in parts]), _cat([p.correct for p in parts], 1),
                        _cat([p.base_correct for p in parts]))


def concat_attack(parts: Sequence[AttackRecords]) -> AttackRecords:
    """The records of disjoint shards of one attack as one, in the given order."""
    first = parts[0]
    fooled = None if first.base_fooled is None else _cat([p.base_fooled for p in parts])
    outcome = None if first.outcome is None else _cat([p.outcome for p in parts])
    stages = tuple(dataclasses.replace(st, ran=sum(p.stages[i].ran for p in parts),
                                       seconds=float(sum(p.stages[i].seconds for p in parts)))
                   for i, st in enumerate(first.stages))
    return AttackRecords(first.info, first.dim, _cat([p.positions for p in parts]), _cat([p.success for p in parts]),
                         _cat([p.l2 for p in parts]), _cat([p.linf for p in parts]),
                         _cat([p.correct for p in parts], 1), fooled, float(sum(p.seconds for p in parts)),
                         outcome, stages)


def select(rec: CleanRecords | AttackRecords, order: np.ndarray) -> Any:
    """The records reindexed by ``order`` (an int array of record indices)."""
    if isinstance(rec, CleanRecords):
        return CleanRecords(rec.positions[order], rec.correct[:, order], rec.base_correct[order])
    return dataclasses.replace(rec, positions=rec.positions[order], success=rec.success[order], l2=rec.l2[order],
                               linf=rec.linf[order], correct=rec.correct[:, order],
                               base_fooled=None if rec.base_fooled is None else rec.base_fooled[order],
                               outcome=None if rec.outcome is None else rec.outcome[order])

