"""What ``shieldbench check`` can expect of a re-run: exact numbers, or only numbers near them.

A result records what its numbers depend on besides the protocol: the package versions, the
models' weight hashes and, since this module, a hash of the defense's code and of the attacks'
code (``provenance.code``). Scoring is keyed by the protocol's seed, so a re-run with the same
code, models and versions should give every number exactly (the runs here are bit-identical);
one that moves anyway points at the machine (another CPU's floating-point kernels). When
something did change, ``check`` says what, plainly, before it compares numbers against the
tolerance.

Results also store per-image outcomes (``bench.eval.results.pack_correct``), so ``check`` can say how
many images flipped and under which attacks (:func:`flips`), and its default tolerance is the
sampling noise of each number rather than one fixed width (:func:`noise_tolerance`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.eval.schema import Result


def _short(h: str | None) -> str:
    return "none" if h is None else h[:12]


def differences(stored: Result, fresh: Result) -> list[str]:
    """What differs between the provenance of a stored result and of its re-run (plain phrases)."""
    out = []
    empty: Mapping[str, Any] = {}
    then, now = stored.provenance.code, fresh.provenance.code or empty
    if then is None:
        out.append("no code hash was recorded with it (an older result), so a change of its code would go unseen")
    else:
        for part in sorted(set(then) | set(now)):
            if then.get(part) != now.get(part):
                out.append(f"its {part} code changed since it was recorded ({_short(then.get(part))} -> "
                           f"{_short(now.get(part))})")
    v_then, v_now = stored.provenance.versions or empty, fresh.provenance.versions or empty
    for pkg in sorted(set(v_then) | set(v_now)):
        if v_then.get(pkg) != v_now.get(pkg):
            out.append(f"{pkg} {v_then.get(pkg, 'absent')} when recorded, {v_now.get(pkg, 'absent')} now")
    m_then, m_now = stored.provenance.models or empty, fresh.provenance.models or empty
    for m in sorted(set(m_then) | set(m_now)):
        if m_then.get(m) != m_now.get(m):
            out.append(f"model {m}'s weights changed since it was recorded ({_short(m_then.get(m))} -> "
                       f"{_short(m_now.get(m))})")
    return out


def expectations(stored: list[Result], fresh: list[Result]) -> dict[str, list[str]]:
    """Defense spec -> what differs (empty: the same code, models and versions, so exact numbers)."""
    by_spec = {r.spec: r for r in stored}
    return {f.spec: differences(by_spec[f.spec], f) for f in fresh if f.spec in by_spec}


# ------------------------------------------------------------------ per-image outcomes and noise
Z = 3.0  # standard errors a number may move before check calls it a regression


@dataclasses.dataclass(frozen=True)
class Flips:
    """Images whose outcome differs between a stored result and its re-run, for one metric.

    Attributes:
        metric: ``"clean"`` or ``"<knowledge> <attack spec>"`` (the names of ``leaderboard.compare``).
        lost: (image, draw) pairs right in the stored result and wrong in the re-run.
        gained: pairs wrong in the stored result and right in the re-run.
        compared: (image, draw) pairs compared.
    """

    metric: str
    lost: int
    gained: int
    compared: int


def outcomes(result: Result) -> dict[str, np.ndarray]:
    """Metric name -> bool ``[R, n]`` per-image outcomes, for the metrics whose records were stored."""
    out = {}
    if (clean := result.correct()) is not None:
        out["clean"] = clean
    for e in result.attacks:
        if (correct := result.correct(e)) is not None:
            out[f"{e.knowledge.value} {e.attack}"] = correct
    return out


def flips(stored: Result, fresh: Result) -> list[Flips] | None:
    """Per-metric flips between two results of one defense; ``None`` if ``stored`` has no records.

    Only metrics whose records exist on both sides with the same shape are compared; a metric
    with no flips is left out.
    """
    then = outcomes(stored)
    if not then:
        return None
    now = outcomes(fresh)
    out = []
    for metric, a in then.items():
        b = now.get(metric)
        if b is None or b.shape != a.shape:
            continue
        lost, gained = int(np.sum(a & ~b)), int(np.sum(~a & b))
        if lost or gained:
            out.append(Flips(metric, lost, gained, a.size))
    return out


def describe_flips(found: list[Flips]) -> str:
    """One line: ``"2 image(s) flipped: gray-box fgsm(eps=8) 2 lost; ..."`` (or none)."""
    if not found:
        return "no image's outcome flipped"
    total = sum(f.lost + f.gained for f in found)
    parts = [f"{f.metric} {f.lost} lost, {f.gained} gained" for f in found]
    return f"{total} image outcome(s) flipped ({'; '.join(parts)})"


def noise_tolerance(result: Result, metric: str) -> float | None:
    """How far ``metric`` of ``result`` may move on an honest re-run: sampling noise, at least one image.

    A re-run scores the same images, so what can move a number without a change of the code is
    the defense's own randomness, when the re-run draws it differently (another machine or
    version): the mean over R draws has a standard error of ``std / sqrt(R)``, where ``std`` is
    the spread of the R stored draws, and the difference of two such means ``sqrt(2 / R) * std``.
    The tolerance is ``Z`` (3) of those, and never less than one image (``1 / n``): a
    deterministic defense has no sampling noise, but another CPU's floating point can flip an
    image on a decision boundary.

    Returns:
        The tolerance as a fraction, or ``None`` if ``result`` has no such metric.
    """
    if metric == "clean":
        stats, n = result.clean_accuracy, result.data.n
    else:
        knowledge, attack = metric.split(" ", 1)
        entry = result.entry(knowledge, attack)
        if entry is None:
            return None
        stats, n = entry.robust_accuracy, entry.n or result.data.n
    draws = max(1, len(stats.draws))
    return max(Z * math.sqrt(2.0 / draws) * float(stats.std), 1.0 / max(1, n))
