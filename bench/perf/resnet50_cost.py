"""Cost per image of the ``imagefolder-224`` template's work: a ResNet-50 v2 at 224x224, one run.

Run: ``python -m bench.perf.resnet50_cost [--batch 8] [--steps 10] [--defense SPEC ...]``
(no data and no weights needed: random 224x224 images and the zoo's ResNet-50 v2 definition,
randomly initialised, 1,000 classes; He et al., "Identity Mappings in Deep Residual Networks",
ECCV 2016).

Per defense (default ``identity()`` and ``jpeg(quality=75)``), warm (after one untimed call
that compiles), in seconds per image at ``--batch``:

* **forward**: the bare model's logits, and the defended prediction the runner scores with;
* **gray-box**: FGSM and PGD-``steps`` crafted on the bare model (the runner's target), shared
  by every defense;
* **adaptive**: PGD-``steps`` crafted through the defended pipeline (the defense's default
  BPDA surrogate, EOT over ``--eot`` keys when it is randomized).

The README's "Images of any size" section quotes these on its machine so that a user can
plan a run (``n`` images x attacks x defenses) on theirs; run it there for their numbers.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp


def seconds_per_image(fn: Callable[[], object], n_images: int) -> float:
    """Warm seconds per image of ``fn`` (which handles ``n_images``): one untimed call, then one timed."""
    jax.block_until_ready(fn())
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return (time.perf_counter() - t0) / n_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="PGD steps (the template's PGD-10)")
    p.add_argument("--eot", type=int, default=4, help="EOT samples for randomized defenses (the template's K)")
    p.add_argument("--defense", action="append", help="defense specs (default: identity(), jpeg(quality=75))")
    args = p.parse_args()
    from tabulate import tabulate

    from attacks.specs import build_attack
    from attacks.target import AttackTarget
    from bench.core.defense import DefendedClassifier, build_defense
    from bench.zoo.models import ResNetV2, init_variables

    shape = (224, 224, 3)
    module = ResNetV2()
    variables = init_variables(module, jax.random.key(0), shape)

    def logits(x: jax.Array) -> jax.Array:
        return module.apply(variables, x, train=False)

    x = jax.random.uniform(jax.random.key(1), (args.batch, *shape))
    y = jnp.arange(args.batch, dtype=jnp.int32) % 1000
    key = jax.random.key(2)
    fgsm, pgd = build_attack("fgsm(eps=8)"), build_attack(f"pgd(eps=8, steps={args.steps})")
    bare = AttackTarget.of_model(jax.jit(logits))
    b = args.batch
    def crafting(attack, target) -> str:
        return f"{seconds_per_image(lambda: attack.run(target, x, y, key).x_adv, b):.2f}"

    rows = [["(bare model)", "forward", f"{seconds_per_image(lambda: bare.logits(x, key), b):.3f}"],
            ["(bare model)", "gray-box fgsm(eps=8)", crafting(fgsm, bare)],
            ["(bare model)", f"gray-box {pgd!r}", crafting(pgd, bare)]]
    for spec in args.defense or ["identity()", "jpeg(quality=75)"]:
        defense = build_defense(spec).on_base("resnet50v2")
        clf = DefendedClassifier(defense, {m: logits for m in defense.members})
        target = clf.target(defense.surrogates()[0], args.eot)
        rows.append([spec, "forward (defended prediction)", f"{seconds_per_image(lambda: clf.predict(x, key), b):.3f}"])
        rows.append([spec, f"adaptive {pgd!r}", crafting(pgd, target)])
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; ResNet-50 v2 at 224x224, batch {b}")
    print(tabulate(rows, headers=["defense", "work", "s / image"], tablefmt="github"))


if __name__ == "__main__":
    main()
