"""The leaderboard's gallery: one test image, its gray-box adversarial example, and each defense's
view of it, titled with the defended prediction (a picture, not a score: it crafts one example
with the attack on the base model and runs the defenses, so it is an experiment, not a report).

    python -m bench.experiments.gallery [--protocol cifar10-standard] [--index 0] [--data DIR]

writes ``leaderboards/<protocol>-gallery.png`` atomically (matplotlib: the ``plots`` extra).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.reports.plots import _plt, png


def gallery(specs: Sequence[str], index: int = 0, attack: str = "pgd(eps=8, steps=20)", data: str | None = None,
            seed: int = 0) -> bytes:
    """One test image (``index`` into the test split), its gray-box example and each defense's
    output, as PNG bytes."""
    import jax
    import jax.numpy as jnp

    from attacks.specs import build_attack
    from bench.core.data import load_dataset
    from bench.core.defense import DefendedClassifier, build_defense
    from bench.zoo.store import load_model

    plt = _plt()
    test = load_dataset("cifar10", "test", data=data)
    x = jnp.asarray(test.as_float(np.array([index])))
    y = jnp.asarray(test.labels[[index]])
    base = load_model("resnet20")
    x_adv = build_attack(attack).run(base.logits_fn(), x, y, jax.random.key(seed)).x_adv
    names = test.classes
    panels = [("clean", x, int(jnp.argmax(base.predict(x), -1)[0])),
              (f"gray-box {attack}", x_adv, int(jnp.argmax(base.predict(x_adv), -1)[0]))]
    key = jax.random.key(seed + 1)
    for spec in specs:
        d = build_defense(spec)
        clf = DefendedClassifier(d, {m: load_model(m).logits_fn() for m in d.members})
        view0, _ = d.views()[0]
        shown = view0(x_adv, jax.random.fold_in(key, 0))  # exactly what the first view classified
        panels.append((spec, shown, int(clf.predict(x_adv, key)[0])))
    cols = min(6, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, img, pred) in zip(axes.flat, panels):
        ax.imshow(np.clip(np.asarray(img[0]), 0, 1), interpolation="nearest")
        ok = pred == int(y[0])
        ax.set_title(f"{label}\n-> {names[pred]}", fontsize=7, color="green" if ok else "red")
    fig.suptitle(f"test image {index} ({names[int(y[0])]}); green = correct prediction", fontsize=9)
    return png(fig)


def main() -> int:
    from bench.core.io import atomic_write_bytes
    from bench.eval.results import load_results, results_root

    p = argparse.ArgumentParser(description="Draw the leaderboard's gallery of one test image.")
    p.add_argument("--protocol", default="cifar10-standard")
    p.add_argument("--results", help="results directory (default leaderboards/results)")
    p.add_argument("--index", type=int, default=0, help="test image of the gallery")
    p.add_argument("--data")
    args = p.parse_args()
    root = Path(args.results) if args.results else results_root()
    specs = [r.spec for r in load_results(root, args.protocol) if r.spec != "identity()"]
    if not specs:
        raise SystemExit(f"no results for {args.protocol} in {root}")
    out = root.parent / f"{args.protocol}-gallery.png"
    atomic_write_bytes(out, gallery(specs, index=args.index, data=args.data))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
