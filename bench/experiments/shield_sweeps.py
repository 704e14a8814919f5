"""Measurements behind the SHIELD report (Das et al., KDD 2018) that are not leaderboard results.

* The EOT sweep: adaptive robust accuracy of ``shield()`` (BPDA + EOT through the ensemble's
  mean logits, Athalye et al. 2018) against the number K of EOT samples, beside its gray-box
  accuracy under the same PGD, on a fixed subset of the ``cifar10-shield`` images. The paper
  evaluated no adaptive attacker; this is how far K must go before the number settles.
* The requantization shares of the protocol's images at each JPEG defense's quality
  (``bench.experiments.requantization``), which the report prints beside the JPEG rows.

Both are stored beside the results (``shield-eot-sweep.json``, ``shield-requantization.json``),
so the report (``bench.reports.shield_report``) renders from files alone. Run:
``python -m bench.experiments.shield_sweeps [--eot-sweep] [--n 200]``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from bench.reports.report import Store, run
from bench.reports.shield_report import EOT_ATTACK, EOT_KS, PROTOCOL, SHARES_FILE, SWEEP_FILE, ShieldReport, report_path


def eot_sweep(ks: tuple[int, ...] = EOT_KS, n: int = 200, spec: str = "shield()", data: str | None = None,
              on_event=None) -> dict[str, Any]:
    """Adaptive robust accuracy of ``spec`` vs EOT samples K (and its gray-box accuracy), on ``n`` images."""
    from bench.core.defense import build_defense
    from bench.eval.protocol import AttackPlan, load_protocol
    from bench.eval.runner import Runner

    p = load_protocol(PROTOCOL)
    defense = build_defense(spec)
    base = dataclasses.replace(p, attacks=(AttackPlan(EOT_ATTACK, ("gray-box",), n),))
    gray = Runner(base, data=data, on_event=on_event).run(defense).attacks[0].robust_accuracy.to_json()
    rows = []
    for k in ks:
        proto = dataclasses.replace(p, eot=k, attacks=(AttackPlan(EOT_ATTACK, ("adaptive",), n),))
        entry = Runner(proto, data=data, on_event=on_event).run(defense).attacks[0]
        rows.append({"eot": k, "robust_accuracy": entry.robust_accuracy.to_json(),
                     "attack_s_per_image": entry.attack_s_per_image})
    return {"defense": spec, "attack": EOT_ATTACK, "n": n, "protocol": {"name": p.name, "sha256": p.sha256},
            "gray_box": gray, "adaptive": rows}


def jpeg_shares(proto, data: str | None = None) -> dict[int, float]:
    """:func:`bench.experiments.requantization.boundary_shares` on the protocol's image set, for its JPEG defenses."""
    from bench.core.data import load_dataset, subset_indices
    from bench.experiments.requantization import boundary_shares
    from bench.core.transform import build_transform

    qs = []
    for spec in proto.defenses:
        if spec.startswith("jpeg("):
            qs.append(build_transform(spec).quality)
    ds = load_dataset(proto.dataset, proto.split, data=data)
    return boundary_shares(ds.images[subset_indices(len(ds), proto.n, proto.seed)], tuple(qs))


def main() -> int:
    from bench.core.io import atomic_write_json
    from bench.eval.protocol import load_protocol
    from bench.eval.results import results_root

    p = argparse.ArgumentParser(description="Measure the SHIELD report's EOT sweep and requantization shares, "
                                            "store them beside the results and render the report.")
    p.add_argument("--eot-sweep", action="store_true", help="(re)run the EOT sweep first (tens of minutes)")
    p.add_argument("--n", type=int, default=200, help="images for the EOT sweep")
    p.add_argument("--results", help="results directory (default leaderboards/results)")
    p.add_argument("--data")
    args = p.parse_args()
    root = Path(args.results) if args.results else results_root()
    if args.eot_sweep:
        atomic_write_json(root / SWEEP_FILE, eot_sweep(n=args.n, data=args.data))
    proto = load_protocol(PROTOCOL)
    shares = jpeg_shares(proto, args.data)  # a few seconds; stored so that the report renders without data
    atomic_write_json(root / SHARES_FILE, {"protocol": {"name": proto.name, "sha256": proto.sha256},
                                           "width": 0.05, "shares": {str(q): v for q, v in shares.items()}})
    run(Store.at(root), [ShieldReport()])
    print(f"wrote {report_path(root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
