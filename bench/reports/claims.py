"""The papers' headline claims, tested against this project's stored CIFAR-10 results.

A view over the results of the README's protocol (``bench.reports.report.README_PROTOCOL``:
``cifar10-standard-v2``; a claim whose defense has no result there yet reads "—"), rendered into the README
between the markers ``<!-- claims:begin -->`` and ``<!-- claims:end -->``.
Each claim names the paper's number and setting and the CIFAR-10 measurement closest to it
under the same knowledge level; the verdict follows a rule stated beside it, with one tolerance
for every claim (:data:`TOLERANCE`). Nothing here is tuned to agree; the reasons why a number
agrees or differs are written by hand under the generated block.

Sources (``../shared/papers``):

* SHIELD (Das et al., KDD 2018), abstract and Fig. 3: JPEG removes up to 98% of gray-box
  DeepFool/C&W-L2 examples; SHIELD, whose vaccinated members the attacker does not have (the
  paper's "black-box"), up to 94%. ImageNet, ResNet-50 v2. Its "removed" is our *eliminated*:
  of the examples that fool the bare base model, the share the defended classifier gets right.
* Feature Distillation (Liu et al., CVPR 2019), §4.3.1 and Table 1: FD-2P lifts the average
  accuracy on six gray-box attacks (FGSM, BIM and C&W-Linf at eps 0.008 ~ 2/255, DeepFool,
  C&W-L2, C&W-L0) from ~3.5% to ~91%, losing <= 1% clean accuracy (MobileNet, ImageNet).
  §4.3.2 and Table 2: under BPDA (Inception v3, 100 iterations) FD 3x keeps 60%, FD 1x 10%,
  JPEG q20 34% and q10 45%.
* BPDA (Athalye et al., ICML 2018), via the FD paper's Table 2 and ``notes/peers.md``: JPEG,
  bit-depth reduction, quilting and TV minimisation all fall to 0% on ImageNet.

``shieldbench report`` rewrites the README block (``--check``: exit 1 when it is stale).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from bench.eval.results import attack_entry
from bench.eval.schema import Result
from bench.reports.report import README_PROTOCOL as PROTOCOL
from bench.reports.report import markers
TOLERANCE = 5.0  # points: ImageNet vs CIFAR-10 and different models; one margin for every claim
BEGIN, END = markers("claims")
L2_ATTACKS = ("deepfool_l2(steps=50)", "cw_l2(steps=100, binary_search_steps=5)")
FD_ATTACKS = ("fgsm(eps=2)", "ifgsm(eps=2, steps=10)") + L2_ATTACKS
ADAPTIVE = "pgd(eps=8, steps=50)"

Results = dict[str, Result]
Measured = tuple[float | None, str]  # (our number in percent or None when not run, how it was obtained)


def best_eliminated(results: Results, specs: tuple[str, ...]) -> Measured:
    """The highest gray-box *eliminated* share over ``specs`` x the L2 attacks ("up to")."""
    found = [(e.eliminated, spec, e.name) for spec in specs for a in L2_ATTACKS
             if (e := attack_entry(results.get(spec), "gray-box", a)) is not None and e.eliminated is not None]
    if not found:
        return None, "not run yet"
    value, spec, name = max(found)
    return 100 * value, f"`{spec}` vs {name}, gray-box (max over {len(found)} pairs)"


def clean_loss(results: Results, spec: str) -> float | None:
    """Base-model clean accuracy minus the defended one, in points."""
    r = results.get(spec)
    return None if r is None or r.base_clean_accuracy is None else 100 * (r.base_clean_accuracy - r.clean_accuracy.mean)


def fd_average(results: Results, spec: str) -> Measured:
    """Mean gray-box robust accuracy over :data:`FD_ATTACKS`, and the clean loss vs the base model."""
    entries = [attack_entry(results.get(spec), "gray-box", a) for a in FD_ATTACKS]
    if any(e is None for e in entries):
        return None, "not run yet"
    mean = sum(e.robust for e in entries) / len(entries)
    return 100 * mean, (f"`{spec}`, mean of FGSM/I-FGSM 2/255, DeepFool, C&W-L2; "
                        f"clean loss {clean_loss(results, spec):.1f} points")


def adaptive(results: Results, spec: str) -> Measured:
    """The board's adaptive number at 8/255 (``bench.reports.leaderboard.worst_entry``): under
    ``cifar10-standard`` the BPDA (EOT when randomized) PGD-50; where the protocol has a worst-case
    ensemble (``cifar10-standard-v2``), the per-image worst case over it."""
    from bench.reports.leaderboard import worst_entry

    r = results.get(spec)
    e = None if r is None else worst_entry(r, "adaptive")
    if e is None:
        return None, "not run yet"
    k = f", EOT K = {e.eot}" if e.eot > 1 else ""
    if e.is_ensemble:
        how = f"worst case of the adaptive ensemble (every surrogate) at 8/255{k}"
    else:
        how = f"BPDA {'PGD-50' if e.attack == ADAPTIVE else e.attack} 8/255{k}"
    return 100 * e.robust, f"`{spec}`, {how}"


@dataclass(frozen=True)
class Claim:
    """One published number and the rule that compares ours with it.

    Attributes:
        source: paper and place.
        claim: the claim in a few words.
        paper: the paper's number, in percent.
        setting: the paper's data, model and knowledge level.
        measure: results -> (our number in percent, how it was measured).
        rule: ``"at least"`` (ours >= paper - tol), ``"at most"`` (ours <= paper + tol) or
            ``"about"`` (|ours - paper| <= tol).
        extra: an additional condition on the results (e.g. the clean loss), with its wording.
    """

    source: str
    claim: str
    paper: float
    setting: str
    measure: Callable[[Results], Measured]
    rule: str
    extra: tuple[Callable[[Results], bool | None], str] | None = None

    def verdict(self, results: Results) -> tuple[Measured, str]:
        value, how = self.measure(results)
        if value is None:
            return (value, how), "—"
        ok = {"at least": value >= self.paper - TOLERANCE, "at most": value <= self.paper + TOLERANCE,
              "about": abs(value - self.paper) <= TOLERANCE}[self.rule]
        if self.extra is not None:
            extra_ok, wording = self.extra[0](results), self.extra[1]
            if extra_ok is None:
                return (value, how), "—"
            if not extra_ok:
                return (value, how), f"does not hold ({wording} fails)"
        return (value, how), "holds" if ok else "does not hold"


def _bpda_zero(spec: str, name: str) -> Claim:
    return Claim("Athalye et al. 2018; FD Table 2", f"BPDA takes {name} to 0%", 0.0,
                 "ImageNet, BPDA (+EOT), normalised L2 0.05; FD's rerun (Inception v3): also 0%",
                 functools.partial(adaptive, spec=spec), "at most")


CLAIMS: tuple[Claim, ...] = (
    Claim("SHIELD abstract, Fig. 3", "JPEG eliminates up to 98% of gray-box attacks", 98.0,
          "ImageNet, ResNet-50 v2, DeepFool/C&W-L2 crafted on the base model",
          functools.partial(best_eliminated, specs=tuple(f"jpeg(quality={q})" for q in (90, 75, 50, 30, 20, 10))),
          "at least"),
    Claim("SHIELD abstract, Fig. 3", "SHIELD eliminates up to 94% of black-box attacks", 94.0,
          "ImageNet, vaccinated ResNet-50 v2 ensemble + SLQ; DeepFool/C&W-L2 crafted on the unvaccinated model",
          functools.partial(best_eliminated, specs=("shield()",)), "at least"),
    Claim("FD §4.3.1, Table 1", "FD-2P: ~91% on adversarial examples, <= 1 point clean loss", 91.0,
          "ImageNet, MobileNet, gray-box, six attacks (Linf at eps 0.008)",
          functools.partial(fd_average, spec="fd(passes=2)"), "at least",
          (lambda r: None if (x := clean_loss(r, "fd(passes=2)")) is None else x <= 1.0, "clean loss <= 1 point")),
    Claim("FD §4.3.2, Table 2", "FD 3x keeps ~60% under BPDA", 60.0, "ImageNet, Inception v3, BPDA, 100 iterations",
          functools.partial(adaptive, spec="fd(s1=90, s2=60)"), "about"),
    Claim("FD §4.3.2, Table 2", "FD 1x keeps ~10% under BPDA", 10.0, "ImageNet, Inception v3, BPDA, 100 iterations",
          functools.partial(adaptive, spec="fd()"), "about"),
    Claim("FD §4.3.2, Table 2", "JPEG q20 keeps ~34% under BPDA", 34.0, "ImageNet, Inception v3, BPDA, 100 iterations",
          functools.partial(adaptive, spec="jpeg(quality=20)"), "about"),
    Claim("FD §4.3.2, Table 2", "JPEG q10 keeps ~45% under BPDA", 45.0, "ImageNet, Inception v3, BPDA, 100 iterations",
          functools.partial(adaptive, spec="jpeg(quality=10)"), "about"),
    _bpda_zero("jpeg(quality=75)", "JPEG q75"),
    _bpda_zero("bitdepth(bits=3)", "3-bit depth"),
    _bpda_zero("bitdepth(bits=5)", "5-bit depth"),
    _bpda_zero("quilting()", "quilting"),
    _bpda_zero("tvm()", "TV minimisation"),
)


class _BySpec(dict):
    """Results by their defense's canonical spec; ``get`` canonicalises the spec it is given,
    so a claim naming ``tvm()`` finds the result stored as ``tvm(drop=0.5, weight=0.03)``."""

    def get(self, spec: str, default: Any = None) -> Any:
        from bench.core.defense import build_defense

        return super().get(build_defense(spec).spec, default)


def render(results: list[Result]) -> str:
    """The generated README block (markers included), deterministic for the same results."""
    by_spec = _BySpec({r.spec: r for r in results})
    rows = []
    for c in CLAIMS:
        (value, how), verdict = c.verdict(by_spec)
        ours = "—" if value is None else f"{value:.1f}%"
        rows.append([c.claim, c.source, f"{c.paper:.0f}%", c.setting, ours, how, f"{c.rule}: {verdict}"])
    table = tabulate(rows, headers=["Claim", "Source", "Paper", "Paper's setting", "Ours", "Our measurement",
                                    "Rule: verdict"], tablefmt="github")
    return "\n".join([
        BEGIN,
        f"<!-- generated by `shieldbench report` from leaderboards/results/{PROTOCOL}/*.json; do not edit -->",
        table, "",
        f"Ours: CIFAR-10, ResNet-20, protocol `{PROTOCOL}` (1,000 test images; C&W on 250). Rules, with one "
        f"tolerance of {TOLERANCE:.0f} points: *at least* means ours >= paper - {TOLERANCE:.0f}; *at most* ours <= "
        f"paper + {TOLERANCE:.0f}; *about* |ours - paper| <= {TOLERANCE:.0f}. \"—\": the defense has no "
        f"`{PROTOCOL}` result yet.",
        END])
