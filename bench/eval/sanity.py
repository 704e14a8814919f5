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

Per-image flags of a worst-case ensemble (``worst_case``, ``bench.eval.adaptive``; its stages run in
order on the survivors of the earlier ones, so "broke" counts images every earlier stage left
robust). The headline already includes these images; the flag says what a weaker evaluation
would have missed, or, for ``check``, that the headline may still be too high:

* ``square``: the gradient-free Square attack broke images that every gradient attack, through
  every surrogate, left robust: the gradients the attacker had were masked or misleading.
* ``surrogate``: stages through a non-default surrogate gradient (JPEG's differentiable
  ``cubic``, a filter's ``own`` gradient, ...) broke images that the default (identity BPDA)
  stages of the ensemble left robust: an identity-only evaluation overstates robustness.
* ``check``: the convergence check (the protocol's stronger attack run last, e.g. twice the steps,
  with twice the EOT samples for randomized defenses) still broke images: the ensemble had not
  converged. Where the ensemble ``escalate``s, the headline also includes what the escalation
  rounds broke after the check.
* ``escalation``: the last escalation round the ensemble allows still broke an image, so the
  stopping rule (a round that breaks nothing) was never met: the worst case may still be too high.

``square``, ``surrogate`` and ``check`` fire when their stages broke more than
``max(IMAGE_MARGIN_MIN, IMAGE_MARGIN * n)`` of the entry's n images (more than 2 images, and more
than 0.5% of them); ``escalation`` on any image, since its rule is that nothing more breaks.

Comparisons between entries on different image subsets use a margin of
``max(MARGIN, 2 * binomial standard error)`` to stay above sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bench.eval.schema import AttackEntry, Result, StageOutcome

MARGIN = 0.02
IMAGE_MARGIN = 0.005
IMAGE_MARGIN_MIN = 2
UNBOUNDED_EPS = 64.0
UNBOUNDED_MAX = 0.05

EXPLANATIONS = {
    "A>G": "adaptive robust accuracy exceeds gray-box at the same eps (the adaptive attack is too weak)",
    "A>T": "adaptive robust accuracy exceeds transfer at the same eps (the adaptive attack is too weak)",
    "unbounded": f"adaptive PGD with eps >= {UNBOUNDED_EPS:g}/255 leaves more than {100 * UNBOUNDED_MAX:g}% "
                 "robust accuracy (gradient masking?)",
    "steps": "doubling the adaptive PGD steps (and, for randomized defenses, the EOT samples) still lowers "
             "robust accuracy by more than the noise margin (not converged)",
    "square": "the gradient-free Square attack broke more than 0.5% of the images (and more than 2) that every "
              "gradient attack through every surrogate left robust (masked or misleading gradients)",
    "surrogate": "attacks through a non-default surrogate gradient broke more than 0.5% of the images (and more "
                 "than 2) that the identity-BPDA attacks left robust (an identity-only evaluation overstates "
                 "robustness)",
    "check": "the convergence check (a stronger attack run last, 2x EOT samples for randomized defenses) still "
             "broke more than 0.5% of the images (and more than 2) that the ensemble left robust (not converged: "
             "the worst case may still be too high; where the ensemble escalates, the headline includes what its "
             "longer, restarted rounds broke after the check)",
    "escalation": "the last escalation round the ensemble allows still broke an image (the worst case may still be "
                  "too high)",
}


def ensemble_flags(entry: AttackEntry) -> list[str]:
    """The per-image flags (``square``, ``surrogate``, ``check``, ``escalation``) of one worst-case entry."""
    return stage_flags(entry.stages, entry.n) if entry.is_ensemble else []


def stage_flags(stages: Sequence[StageOutcome], n: int) -> list[str]:
    """The per-image flags of a worst-case ensemble's stages, run on ``n`` images."""
    def broke(which: Callable[[StageOutcome], bool]) -> int:
        return sum(st.broke for st in stages if which(st))

    limit = max(IMAGE_MARGIN_MIN, IMAGE_MARGIN * n)
    default = next((st.surrogate for st in stages if st.surrogate), None)
    last = max((st.round for st in stages), default=0)
    counts = {
        "square": broke(lambda st: st.surrogate is None and not st.check),
        "surrogate": broke(lambda st: st.surrogate not in (None, default) and not st.check),
        "check": broke(lambda st: st.check and not st.round),
    }
    flags = [code for code, count in counts.items() if count > limit]
    if last and broke(lambda st: st.round == last) > 0:
        flags.append("escalation")
    return flags


def _margin(a: AttackEntry, b: AttackEntry) -> float:
    p = min(max(a.robust, 1e-3), 1 - 1e-3)
    n = min(a.n or 1000, b.n or 1000)
    return max(MARGIN, 2.0 * math.sqrt(p * (1 - p) / n))


def _steps(entry: AttackEntry) -> int | None:
    """An attack entry's steps, its spec's default where the spec does not say."""
    from attacks.specs import build_attack

    return getattr(build_attack(entry.attack), "steps", None)


def sanity_flags(result: Result) -> list[str]:
    """The flags (codes of ``EXPLANATIONS``) a result raises, in a fixed order."""
    linf = [e for e in result.attacks if e.norm == "linf" and e.eps is not None]
    flags = []
    for level, code in (("gray-box", "A>G"), ("transfer", "A>T")):
        for a in (e for e in linf if e.knowledge == "adaptive"):
            others = [e for e in linf if e.knowledge == level and e.eps == a.eps]
            if others:
                best = min(others, key=lambda e: e.robust)
                if a.robust > best.robust + _margin(a, best):
                    flags.append(code)
                    break
    pgd = [e for e in linf if e.knowledge == "adaptive" and e.name == "pgd"]
    if any(e.eps >= UNBOUNDED_EPS and e.robust > UNBOUNDED_MAX for e in pgd):
        flags.append("unbounded")
    for short in pgd:
        for long in pgd:
            s, t = _steps(short), _steps(long)
            if (long.eps == short.eps and s and t and t >= 2 * s and long.eot >= short.eot
                    and short.robust - long.robust > _margin(short, long)):
                flags.append("steps")
                break
        if "steps" in flags:
            break
    for code in ("square", "surrogate", "check", "escalation"):
        if any(code in ensemble_flags(e) for e in linf if e.knowledge == "adaptive"):
            flags.append(code)
    return flags
