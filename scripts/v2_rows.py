"""Prints the README's "Adaptive evaluation v2" table rows from the committed v2 partials.

    python scripts/v2_rows.py            # from the checkout's root

Per defense: v1's PGD-50 at 8/255 (leaderboards/results/cifar10-standard), v2's PGD-50 alone and
the worst case at 8/255 and 4/255 (from the stored per-image correctness, averaged over the R
scoring draws as the board's mean is), which stages broke the images the first
stage left at 8/255 (from the per-image outcomes), the sanity flags of the worst-case entries,
and the adaptive crafting time (every attack's recorded seconds, the ensemble's first stage
counted once: it is the standalone PGD-50's cached examples).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval.jobs import Partial, load_partials  # noqa: E402
from bench.eval.metrics import stage_metrics  # noqa: E402
from bench.eval.results import load_results  # noqa: E402
from bench.eval.sanity import stage_flags  # noqa: E402
from bench.eval.schema import StageOutcome, read_json  # noqa: E402

NAMES = {"apgd_ce": "APGD-CE", "apgd_t": "APGD-T", "pgd": "PGD-50", "square": "Square"}


def v1_numbers() -> dict[str, float]:
    out = {}
    for r in load_results(ROOT / "leaderboards" / "results", "cifar10-standard"):
        if (a := r.entry("adaptive", "pgd(eps=8, steps=50)")) is not None:
            out[r.spec] = a.robust
    return out


def stage_name(st: StageOutcome) -> str:
    name = NAMES.get(st.attack.split("(")[0], st.attack)
    if st.round:
        name = f"APGD-CE-1000 round {st.round}" if name == "APGD-CE" else f"{name} round {st.round}"
    elif st.check:
        name += " check"
    return name + (f" via {st.surrogate}" if st.surrogate else "")


def row(p: Partial, v1: dict[str, float]) -> tuple:
    acc, flags, broke, cost = {}, {}, "", 0.0
    for rec in p.attacks:
        if rec.info.knowledge != "adaptive":
            continue
        # the board's number: the mean over the R scoring draws (R = 1 for a deterministic defense)
        acc.setdefault(rec.info.attack.split(",")[0], []).append(100 * float(rec.correct.mean()))
        cost += sum(s.seconds for s in rec.stages[1:]) if rec.stages else rec.seconds
        if not rec.stages:
            continue
        stages = [read_json(StageOutcome, st, p.source) for st in stage_metrics(rec)]
        flags[rec.info.eps] = stage_flags(stages, len(rec.outcome))
        if not broke:  # the 8/255 ensemble: what broke the first stage's survivors
            broke = ", ".join(f"{stage_name(st)} {st.broke}" for st in stages[1:] if st.broke) or "nothing left"
    spec = p.header.defense.spec
    (p8,), (p4,) = acc["pgd(eps=8"], acc["pgd(eps=4"]
    w8, w4 = acc["worst_case(attacks=('pgd(eps=8"][0], acc["worst_case(attacks=('pgd(eps=4"][0]
    shown = "; ".join(f"{', '.join(f)} at {e:g}/255" for e, f in sorted(flags.items(), reverse=True) if f) or "—"
    return spec, v1.get(spec), p8, w8, p4, w4, broke, shown, cost / 60


def main() -> None:
    v1 = v1_numbers()
    partials = load_partials(ROOT / "leaderboards" / "partials", "cifar10-standard-v2")
    # the adaptive level's partials (a randomized row not yet merged also has its gray-box and transfer ones here)
    rows = [row(p, v1) for p in partials if any(rec.info.knowledge == "adaptive" for rec in p.attacks)]
    for r in sorted(rows, key=lambda r: -(r[1] or 0.0)):
        v = "—" if r[1] is None else f"{100 * r[1]:.1f}%"
        print(f"| `{r[0]}` | {v} | {r[2]:.1f}% | **{r[3]:.1f}%** | {r[4]:.1f}% | **{r[5]:.1f}%** | {r[6]} | {r[7]} "
              f"| {r[8]:.1f} min |")


if __name__ == "__main__":
    main()
