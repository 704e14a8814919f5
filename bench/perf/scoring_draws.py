"""Scoring a randomized defense: ``predict_draws`` against a ``predict`` call per draw, one run.

Run: ``python -m bench.perf.scoring_draws [--seconds 3] [--draws 5] [--batch 250]``
(needs the zoo's ``resnet20``, and its SHIELD members for ``shield()``).

The runner scores every example under R draws of the defense's randomness
(``cifar10-standard``: R = 5, batches of 250). ``DefendedClassifier.predict_draws`` takes a
batch's R keys at once. For transforms with ``key_free_work`` (quilting) it is one ``vmap``
over the keys, so the work that does not depend on the key, the neighbour search, is done
once; the others keep a call per draw (a ``vmap`` measured 0.7x and a ``lax.map`` 0.8-1.3x
for the DCT-based defenses), so their ratio is ~1. The reference is the loop the runner used
before: ``predict(x, key)`` once per draw. Both give the same labels (checked here, and in
``tests/eval/test_runner.py``).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from bench.core.timing import rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--defense", action="append", help="defense specs (default: quilting(), slq(), tvm())")
    args = p.parse_args()
    from tabulate import tabulate

    from bench.core.defense import DefendedClassifier, build_defense
    from bench.zoo.store import load_model

    x = jax.random.uniform(jax.random.key(0), (args.batch, 32, 32, 3))
    keys = jax.random.split(jax.random.key(1), args.draws)
    rows = []
    for spec in args.defense or ["quilting()", "slq()", "tvm()"]:
        defense = build_defense(spec)
        clf = DefendedClassifier(defense, {m: load_model(m).logits_fn() for m in defense.members})
        together = np.asarray(clf.predict_draws(x, keys))
        apart = np.stack([np.asarray(clf.predict(x, k)) for k in keys])
        if not np.array_equal(together, apart):
            raise SystemExit(f"{spec}: predict_draws disagrees with predict on "
                             f"{int((together != apart).sum())} of {together.size} labels")
        n = args.batch * args.draws
        ours = rate(lambda: clf.predict_draws(x, keys), n, args.seconds)
        ref = rate(lambda: [clf.predict(x, k) for k in keys], n, args.seconds)
        vmapped = all(t.key_free_work for t in defense.transforms)
        rows.append([spec, vmapped, args.draws, args.batch, f"{ours:,.0f}", f"{ref:,.0f}", f"{ours / ref:.2f}x"])
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; {args.seconds:.0f} s per entry")
    print(tabulate(rows, headers=["defense", "vmap", "draws", "batch", "predict_draws (img-draws/s)",
                                  "a call per draw", "ratio"], tablefmt="github"))


if __name__ == "__main__":
    main()
