"""Evaluation sanity flags for a results row (Carlini et al. 2019, "On Evaluating Adversarial
Robustness", §5: checks that an evaluation, not the defense, may be at fault).

Each flag is a short code shown in the leaderboard's Flags column and explained under it:

* ``A>G`` / ``A>T``: adaptive robust accuracy exceeds gray-box / transfer robust accuracy at
  the same Linf budget. An adaptive attacker knows strictly more, so this points at a weak
  adaptive attack (bad surrogate, too few steps or EOT samples), not at robustness.
* ``unbounded``: an adaptive PGD with eps >= 64/255 leaves more than ``UNBOUNDED_MAX`` robust
  accuracy. With a budget that large an attack that works should reach ~0%; if it does not,
  gradients are not reaching the input (gradient masking).
* ``steps``: for two adaptive PGD attacks at the same eps, one with at least twice the steps
  (and at least as many EOT samples) of the other, the longer one lowers robust accuracy by
  more than the noise margin: the attack had not converged, so the shorter number overstates
  robustness. ``cifar10-standard``'s sanity attack doubles both the steps and, for randomized
  defenses, the EOT samples K, so this also tests whether K was enough.

Comparisons between entries on different image subsets use a margin of
``max(MARGIN, 2 * binomial standard error)`` to stay above sampling noise.
"""

from __future__ import annotations

import math
from typing import Any

MARGIN = 0.02
UNBOUNDED_EPS = 64.0
UNBOUNDED_MAX = 0.05

EXPLANATIONS = {
    "A>G": "adaptive robust accuracy exceeds gray-box at the same eps (the adaptive attack is too weak)",
    "A>T": "adaptive robust accuracy exceeds transfer at the same eps (the adaptive attack is too weak)",
    "unbounded": f"adaptive PGD with eps >= {UNBOUNDED_EPS:g}/255 leaves more than {100 * UNBOUNDED_MAX:g}% "
                 "robust accuracy (gradient masking?)",
    "steps": "doubling the adaptive PGD steps (and, for randomized defenses, the EOT samples) still lowers "
             "robust accuracy by more than the noise margin (not converged)",
}


def _margin(a: dict[str, Any], b: dict[str, Any]) -> float:
    p = min(max(a["robust_accuracy"]["mean"], 1e-3), 1 - 1e-3)
    n = min(a.get("n") or 1000, b.get("n") or 1000)
    return max(MARGIN, 2.0 * math.sqrt(p * (1 - p) / n))


def _steps(entry: dict[str, Any]) -> int | None:
    from bench.registry import parse_spec

    _, _, kwargs = parse_spec(entry["attack"])
    return kwargs.get("steps", 40 if entry["name"] == "pgd" else None)


def sanity_flags(result: dict[str, Any]) -> list[str]:
    """The flags (codes of ``EXPLANATIONS``) a results dict raises, in a fixed order."""
    linf = [e for e in result["attacks"] if e["norm"] == "linf" and e["eps"] is not None]
    flags = []
    for level, code in (("gray-box", "A>G"), ("transfer", "A>T")):
        for a in (e for e in linf if e["knowledge"] == "adaptive"):
            others = [e for e in linf if e["knowledge"] == level and e["eps"] == a["eps"]]
            if others:
                best = min(others, key=lambda e: e["robust_accuracy"]["mean"])
                if a["robust_accuracy"]["mean"] > best["robust_accuracy"]["mean"] + _margin(a, best):
                    flags.append(code)
                    break
    pgd = [e for e in linf if e["knowledge"] == "adaptive" and e["name"] == "pgd"]
    if any(e["eps"] >= UNBOUNDED_EPS and e["robust_accuracy"]["mean"] > UNBOUNDED_MAX for e in pgd):
        flags.append("unbounded")
    for short in pgd:
        for long in pgd:
            s, t = _steps(short), _steps(long)
            if (long["eps"] == short["eps"] and s and t and t >= 2 * s and long.get("eot", 1) >= short.get("eot", 1)
                    and short["robust_accuracy"]["mean"] - long["robust_accuracy"]["mean"] > _margin(short, long)):
                flags.append("steps")
                break
        if "steps" in flags:
            break
    return flags
