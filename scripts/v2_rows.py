"""Prints the README's "Adaptive evaluation v2" table rows from the committed v2 partials.

    python scripts/v2_rows.py            # from the checkout's root

Per defense: v1's PGD-50 at 8/255 (leaderboards/results/cifar10-standard), v2's PGD-50 alone and
the worst case at 8/255 and 4/255 (from the stored per-image correctness of the first scoring
draw, as the board's mean for a deterministic defense), which stages broke the images the first
stage left at 8/255 (from the per-image outcomes), the sanity flags of the worst-case entries,
and the adaptive crafting time (every attack's recorded seconds, the ensemble's first stage
counted once: it is the standalone PGD-50's cached examples).
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval.metrics import parse_outcomes  # noqa: E402
from bench.eval.results import load_results  # noqa: E402
from bench.eval.sanity import stage_flags  # noqa: E402
from bench.eval.schema import StageOutcome  # noqa: E402

NAMES = {"apgd_ce": "APGD-CE", "apgd_t": "APGD-T", "pgd": "PGD-50", "square": "Square"}


def v1_numbers() -> dict[str, float]:
    out = {}
    for r in load_results(ROOT / "leaderboards" / "results", "cifar10-standard"):
        if (a := r.entry("adaptive", "pgd(eps=8, steps=50)")) is not None:
            out[r.spec] = a.robust
    return out


def stage_name(st: dict) -> str:
    name = NAMES.get(st["attack"].split("(")[0], st["attack"])
    if st.get("round"):
        name = f"APGD-CE-1000 round {st['round']}" if name == "APGD-CE" else f"{name} round {st['round']}"
    elif st["check"]:
        name += " check"
    return name + (f" via {st['surrogate']}" if st["surrogate"] else "")


def row(d: dict, v1: dict[str, float]) -> tuple:
    acc, flags, broke, cost = {}, {}, "", 0.0
    for a in d["attacks"]:  # a partial's records (see bench.eval.jobs): the spec and budget are under "info"
        bits = a["correct"][0]
        acc.setdefault(a["info"]["attack"].split(",")[0], []).append(100 * bits.count("1") / len(bits))
        stages = a.get("stages") or []
        cost += sum(s["seconds"] for s in stages[1:]) if stages else a["seconds"]
        if not stages:
            continue
        outcome = parse_outcomes(a["outcome"])
        counts = collections.Counter(int(o) for o in outcome)
        n = len(outcome)
        alive = [sum(1 for o in outcome if o < 0 or o > i) for i in range(1, len(stages) + 1)]
        flags[a["info"]["eps"]] = stage_flags(
            [StageOutcome(st["attack"], st["surrogate"], st["check"], st["ran"], counts.get(i, 0), alive[i - 1] / n,
                          st["seconds"], st.get("round", 0)) for i, st in enumerate(stages, start=1)], n)
        if not broke:  # the 8/255 ensemble: what broke the first stage's survivors
            broke = ", ".join(f"{stage_name(st)} {counts[i]}" for i, st in enumerate(stages, start=1)
                              if i > 1 and counts.get(i)) or "nothing left"
    spec = d["defense"]["spec"]
    (p8,), (p4,) = acc["pgd(eps=8"], acc["pgd(eps=4"]
    w8, w4 = acc["worst_case(attacks=('pgd(eps=8"][0], acc["worst_case(attacks=('pgd(eps=4"][0]
    shown = "; ".join(f"{', '.join(f)} at {e:g}/255" for e, f in sorted(flags.items(), reverse=True) if f) or "—"
    return spec, v1.get(spec), p8, w8, p4, w4, broke, shown, cost / 60


def main() -> None:
    v1 = v1_numbers()
    rows = [row(json.loads(f.read_text()), v1)
            for f in sorted((ROOT / "leaderboards" / "partials" / "cifar10-standard-v2").glob("*/*.json"))]
    for r in sorted(rows, key=lambda r: -(r[1] or 0.0)):
        v = "—" if r[1] is None else f"{100 * r[1]:.1f}%"
        print(f"| `{r[0]}` | {v} | {r[2]:.1f}% | **{r[3]:.1f}%** | {r[4]:.1f}% | **{r[5]:.1f}%** | {r[6]} | {r[7]} "
              f"| {r[8]:.1f} min |")


if __name__ == "__main__":
    main()
