"""SHIELD's comparisons on CIFAR-10, rendered from stored results (Das et al., KDD 2018).

Views over the ``cifar10-shield`` protocol's results (``shieldbench run --protocol
cifar10-shield``) plus an EOT sweep of the adaptive attack on ``shield()``:

* vaccination (the paper's Fig. 6): accuracy vs FGSM eps for ``jpeg(q)`` in front of the base
  model and of the model vaccinated at q, for q = 20 and 80;
* ensembles (Table 2): ``shield_mxq()``, ``shield_mq()``, ``shield()``, their vote counts and
  accuracy vs FGSM eps;
* Table 1's shape: every defense against C&W-L2, DeepFool-L2, I-FGSM 4/255, FGSM 4/255;
* adaptive (BPDA + EOT through the ensemble's mean logits): robust accuracy of ``shield()``
  vs the number K of EOT samples, beside its gray-box accuracy under the same attack.

Next to each table, one generated sentence compares the CIFAR-10 numbers with the paper's
ImageNet claim by a stated rule; nothing is tuned to agree. Run:
``python -m bench.shield_report [--eot-sweep]`` (the sweep costs tens of minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.leaderboard import format_pct

PROTOCOL = "cifar10-shield"
FGSM_EPS = (2, 4, 6, 8)
TABLE1 = ("cw_l2(steps=100, binary_search_steps=5)", "deepfool_l2(steps=50)", "ifgsm(eps=4, steps=10)", "fgsm(eps=4)")
EOT_KS = (1, 2, 4, 8, 16)
EOT_ATTACK = "pgd(eps=8, steps=20)"


def _acc(result: dict[str, Any] | None, attack: str | None) -> float | None:
    if result is None:
        return None
    if attack is None:
        return result["clean_accuracy"]["mean"]
    for e in result["attacks"]:
        if e["knowledge"] == "gray-box" and e["attack"] == attack:
            return e["robust_accuracy"]["mean"]
    return None


def _verdict(ok: bool | None, yes: str, no: str) -> str:
    return "Not enough results to compare yet." if ok is None else (yes if ok else no)


def vaccination_table(by_spec: dict[str, dict]) -> tuple[str, str]:
    rows, gains = [], []
    for q in (20, 80):
        for label, spec in (("base `resnet20`", f"jpeg(quality={q})"), (f"vaccinated M{q}", f"vaccinated(quality={q})")):
            r = by_spec.get(spec)
            rows.append([f"JPEG q{q}", label, *(format_pct(_acc(r, None if e == 0 else f"fgsm(eps={e})")) for e in (0, *FGSM_EPS))])
        base, vacc = by_spec.get(f"jpeg(quality={q})"), by_spec.get(f"vaccinated(quality={q})")
        for e in FGSM_EPS:
            a, b = _acc(base, f"fgsm(eps={e})"), _acc(vacc, f"fgsm(eps={e})")
            if a is not None and b is not None:
                gains.append(b - a)
    table = tabulate(rows, ["preprocessing", "model", *(f"eps {e}/255" for e in (0, *FGSM_EPS))], tablefmt="github")
    ok = None if not gains else all(g > 0 for g in gains)
    text = _verdict(ok, "Agrees with the paper: the vaccinated model is more accurate than the base model behind the "
                        "same JPEG quality at every FGSM eps tested.",
                    f"Disagrees in part with the paper: vaccination changed accuracy by {min(gains) * 100:+.1f} to "
                    f"{max(gains) * 100:+.1f} points across the FGSM eps tested, not always upward." if gains else "")
    return table, text


def ensemble_table(by_spec: dict[str, dict]) -> tuple[str, str]:
    from bench.defense import build_defense

    rows, accs = [], {}
    for name, spec in (("Mq x q", "shield_mxq()"), ("Mq - q", "shield_mq()"), ("SHIELD", "shield()")):
        r = by_spec.get(spec)
        accs[spec] = [_acc(r, f"fgsm(eps={e})") for e in FGSM_EPS]
        rows.append([name, f"`{spec}`", len(build_defense(spec).views()),
                     *(format_pct(_acc(r, None if e == 0 else f"fgsm(eps={e})")) for e in (0, *FGSM_EPS))])
    table = tabulate(rows, ["scheme", "spec", "votes", *(f"eps {e}/255" for e in (0, *FGSM_EPS))], tablefmt="github")
    pairs = [(s, m) for s, m in zip(accs["shield()"], accs["shield_mxq()"]) if s is not None and m is not None]
    ok = None if not pairs else all(s >= m - 0.02 for s, m in pairs)
    text = _verdict(ok, "Agrees with the paper: SHIELD's 4 votes are within 2 points of (or above) the 16-vote Mq x q "
                        "ensemble at every eps.",
                    "Disagrees with the paper: SHIELD's 4 votes fall more than 2 points below the 16-vote Mq x q "
                    "ensemble at some eps.")
    return table, text


def table1(results: list[dict]) -> tuple[str, str]:
    rows = []
    for r in results:
        rows.append([f"`{r['defense']['spec']}`", format_pct(_acc(r, None)), *(format_pct(_acc(r, a)) for a in TABLE1)])
    headers = ["defense", "clean", "C&W-L2 (L2<=0.5)", "DeepFool-L2 (L2<=0.5)", "I-FGSM 4/255", "FGSM 4/255"]
    table = tabulate(rows, headers, tablefmt="github")
    by_spec = {r["defense"]["spec"]: r for r in results}
    shield = by_spec.get("shield()")
    others = [r for r in results if r["defense"]["spec"] not in ("shield()", "shield_mq()", "shield_mxq()")
              and not r["defense"]["spec"].startswith("vaccinated")]
    ok = None
    compared = [(a, _acc(shield, a), [v for o in others if (v := _acc(o, a)) is not None]) for a in TABLE1]
    compared = [(a, s, vs) for a, s, vs in compared if s is not None and vs]  # skip attacks not run
    if compared:
        ok = all(s >= max(vs) for _, s, vs in compared)
    text = _verdict(ok, "Agrees with the paper: shield() is the most accurate defense against every attack of the table.",
                    "Disagrees in part with the paper: against at least one attack of the table a single-model "
                    "defense is more accurate than shield().")
    return table, text


def eot_sweep(ks: tuple[int, ...] = EOT_KS, n: int = 200, spec: str = "shield()", data: str | None = None,
              on_event=None) -> dict[str, Any]:
    """Adaptive robust accuracy of ``spec`` vs EOT samples K (and its gray-box accuracy), on ``n`` images."""
    from bench.defense import build_defense
    from bench.protocol import AttackPlan, load_protocol
    from bench.runner import Runner

    p = load_protocol(PROTOCOL)
    defense = build_defense(spec)
    base = dataclasses.replace(p, attacks=(AttackPlan(EOT_ATTACK, ("gray-box",), n),))
    gray = Runner(base, data=data, on_event=on_event).run(defense)["attacks"][0]["robust_accuracy"]
    rows = []
    for k in ks:
        proto = dataclasses.replace(p, eot=k, attacks=(AttackPlan(EOT_ATTACK, ("adaptive",), n),))
        entry = Runner(proto, data=data, on_event=on_event).run(defense)["attacks"][0]
        rows.append({"eot": k, "robust_accuracy": entry["robust_accuracy"], "attack_s_per_image": entry["attack_s_per_image"]})
    return {"defense": spec, "attack": EOT_ATTACK, "n": n, "protocol": {"name": p.name, "sha256": p.sha256},
            "gray_box": gray, "adaptive": rows}


def eot_table(sweep: dict[str, Any] | None) -> tuple[str, str]:
    if not sweep:
        return "No EOT sweep stored yet (`python -m bench.shield_report --eot-sweep`).", ""
    gray = sweep["gray_box"]["mean"]
    rows = [["gray-box (base-model examples)", "—", format_pct(gray), "—"]]
    for r in sweep["adaptive"]:
        m = r["robust_accuracy"]["mean"]
        rows.append(["adaptive BPDA + EOT", r["eot"], f"{format_pct(m)} ± {100 * r['robust_accuracy']['std']:.1f}",
                     f"{100 * m / gray:.0f}%" if gray > 0 else "—"])
    table = tabulate(rows, ["attack", "EOT K", f"robust accuracy ({sweep['attack']}, {sweep['n']} images)",
                            "of gray-box kept"], tablefmt="github")
    means = [r["robust_accuracy"]["mean"] for r in sweep["adaptive"]]
    stop = next((sweep["adaptive"][i]["eot"] for i in range(len(means))
                 if all(means[i] - m <= 0.01 for m in means[i + 1:])), None)
    text = (f"The paper reports no white-box number. Here {100 * means[-1] / gray:.0f}% of shield()'s gray-box "
            f"accuracy survives the adaptive attack at K = {sweep['adaptive'][-1]['eot']}; the number stops falling "
            f"(by more than 1 point) from K = {stop}." if gray > 0 else "")
    return table, text


def render(results: list[dict], sweep: dict[str, Any] | None) -> str:
    """The whole report as markdown (deterministic for the same inputs)."""
    by_spec = {r["defense"]["spec"]: r for r in results}
    parts = ["<!-- generated by `python -m bench.shield_report` from leaderboards/results/cifar10-shield/*.json and "
             "leaderboards/results/shield-eot-sweep.json; do not edit by hand -->",
             "# SHIELD on CIFAR-10", "",
             "Gray-box: examples crafted on the bare base model `resnet20` (for the vaccinated members this is also "
             "SHIELD's \"black-box\"). Protocol `cifar10-shield`; numbers are accuracies on its fixed image set; "
             "randomized defenses are means over the protocol's draws. Regenerate: `shieldbench run --protocol "
             "cifar10-shield && python -m bench.shield_report --eot-sweep`."]
    for title, (table, text) in (("Vaccination (paper Fig. 6): accuracy vs FGSM eps", vaccination_table(by_spec)),
                                 ("Ensembles (paper Table 2): accuracy vs FGSM eps", ensemble_table(by_spec)),
                                 ("Main comparison (shape of paper Table 1)", table1(results)),
                                 ("Adaptive attack on shield(): BPDA + EOT through the mean logits", eot_table(sweep))):
        parts += ["", f"## {title}", "", table, ""]
        if text:
            parts.append(text)
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    from bench.io import atomic_write_bytes, atomic_write_json
    from bench.results import load_results, results_root

    p = argparse.ArgumentParser(description="Render leaderboards/shield-cifar10.md from stored results.")
    p.add_argument("--eot-sweep", action="store_true", help="(re)run the EOT sweep first (tens of minutes)")
    p.add_argument("--n", type=int, default=200, help="images for the EOT sweep")
    p.add_argument("--results", help="results directory (default leaderboards/results)")
    p.add_argument("--data")
    args = p.parse_args()
    root = Path(args.results) if args.results else results_root()
    sweep_path = root / "shield-eot-sweep.json"
    if args.eot_sweep:
        atomic_write_json(sweep_path, eot_sweep(n=args.n, data=args.data))
    sweep = json.loads(sweep_path.read_text()) if sweep_path.exists() else None
    out = root.parent / "shield-cifar10.md"
    atomic_write_bytes(out, render(load_results(root, PROTOCOL), sweep).encode())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
