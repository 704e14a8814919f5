"""Attack cost: a Foolbox PGD step vs a hand-written jitted PGD step, and protocol wall times.

Run: ``python -m bench.perf.attack_cost [--batch 128] [--steps 20] [--arch resnet20]``.

Both paths attack the same model (the zoo's ``resnet20`` when present, else a freshly
initialised ResNet-20 of the same cost) with the same batch, eps and step count; the
reference is one ``jax.jit``-compiled function per step (loss, gradient, sign step,
projection, clipping). Printed: ms per step for each and the ratio Foolbox / jitted
(goal <= 1.15x), then the cost of every stored protocol result per defense.

A run re-scores cached examples in seconds, so a result's wall time says little about what the
protocol costs. The cost table is therefore rebuilt from the crafting seconds each result
stores per attack (``attack_s_per_image``, kept in the cache with the examples, so a cache hit
reports the original crafting time): the adaptive attacks are crafted for every defense, the
gray-box and transfer examples once per protocol and shared. The times are those of the
machine and load at crafting time; a result crafted beside other jobs reads slow.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax

if TYPE_CHECKING:
    from bench.eval.schema import Result


def _model_logits(arch: str):
    from bench.zoo.store import ZooError, load_model

    try:
        return load_model(arch).logits_fn(), f"zoo {arch}"
    except ZooError:
        from bench.zoo.models import create_model, init_variables

        model = create_model(arch)
        variables = init_variables(model, jax.random.key(0), (32, 32, 3))
        return (lambda x: model.apply(variables, x, train=False)), f"untrained {arch} (same cost)"


def measure(batch: int, steps: int, arch: str, repeats: int = 3) -> dict[str, float]:
    """ms per PGD step through Foolbox and through a hand-written jitted step."""
    from attacks.specs import build_attack

    logits, what = _model_logits(arch)
    jitted_logits = jax.jit(logits)
    x = jax.random.uniform(jax.random.key(1), (batch, 32, 32, 3))
    y = jnp.argmax(jitted_logits(x), -1)
    eps = 8 / 255
    attack = build_attack(f"pgd(eps=8, steps={steps})")
    alpha = attack.params()["rel_stepsize"] * eps

    @jax.jit
    def step(xa, x0, y):
        g = jax.grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(logits(z), y).mean())(xa)
        xa = xa + alpha * jnp.sign(g)
        return jnp.clip(jnp.clip(xa, x0 - eps, x0 + eps), 0.0, 1.0)

    def hand():
        xa = jnp.clip(x + jax.random.uniform(jax.random.key(2), x.shape, minval=-eps, maxval=eps), 0, 1)
        for _ in range(steps):
            xa = step(xa, x, y)
        return jax.block_until_ready(xa)

    def foolbox():
        return jax.block_until_ready(attack.run(jitted_logits, x, y, jax.random.key(3)).x_adv)

    out = {"what": what}
    for name, fn in (("jitted", hand), ("foolbox", foolbox)):
        fn()  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = 1000.0 * min(times) / steps
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--arch", default="resnet20")
    args = p.parse_args()
    from tabulate import tabulate

    print(f"device: {jax.devices()[0].platform}, {jax.local_device_count()} device(s)")
    m = measure(args.batch, args.steps, args.arch)
    print(f"PGD on {m['what']}, batch {args.batch}, {args.steps} steps (best of 3):")
    print(tabulate([["hand-written jitted step", f"{m['jitted']:.1f}"], ["Foolbox LinfPGD step", f"{m['foolbox']:.1f}"]],
                   ["path", "ms/step"], tablefmt="github"))
    print(f"ratio foolbox / jitted: {m['foolbox'] / m['jitted']:.2f}x (goal <= 1.15x)")

    from bench.eval.results import load_results, protocols_with_results, results_root

    rows = []
    for proto in protocols_with_results(results_root()):
        for r in load_results(results_root(), proto):
            c = crafting_minutes(r)
            rows.append([proto, r.spec, f"{c['adaptive']:.1f}", f"{c['shared']:.1f}",
                         f"{r['provenance']['wall_time_s'] / 60:.1f}", f"{r['cost']['defense_ms_per_image']:.3f}"])
    if rows:
        print("\nstored protocol results: crafting minutes (adaptive: per defense; shared: gray-box and transfer,"
              " once per protocol) and the last run's wall minutes (cached examples are only re-scored):")
        print(tabulate(rows, ["protocol", "defense", "adaptive min", "shared min", "last run min", "defense ms/img"],
                       tablefmt="github"))


def crafting_minutes(result: Result) -> dict[str, float]:
    """Crafting minutes stored in a result, split into per-defense and shared attacks.

    Args:
        result: a stored result (``bench.eval.schema.Result``).

    Returns:
        ``{"adaptive": minutes, "shared": minutes}``: the sum over the result's attacks of
        ``attack_s_per_image * n``; adaptive attacks are crafted for this defense, gray-box
        and transfer ones once per protocol for every defense.
    """
    out = {"adaptive": 0.0, "shared": 0.0}
    for a in result.attacks:
        out["adaptive" if a.knowledge == "adaptive" else "shared"] += a.attack_s_per_image * (a.n or 0) / 60.0
    return out


if __name__ == "__main__":
    main()
