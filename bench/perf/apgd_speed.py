"""APGD's gradient steps per second against Foolbox PGD's, on the same model in the same run.

Run: ``python -m bench.perf.apgd_speed [--batch 128] [--steps 20] [--arch resnet20] [--defense SPEC]``.

Both attacks run ``steps`` iterations on the same batch against the same target (the zoo's
``resnet20`` when present, else an untrained ResNet-20 of the same cost; with ``--defense``, the
defended pipeline through its default BPDA surrogate). Each is timed warm (one untimed call
first, so compilation is not counted, then again with a new key) and reported as gradient
evaluations per second: PGD takes ``steps``, APGD ``steps + 1`` (its start point is evaluated
too). Printed: both rates and the ratio APGD / PGD (the adaptive-v2 issue's goal: >= 1.0x);
and, separately, APGD's compile time, which a benchmark run pays once per (attack, surrogate,
batch shape).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from bench.perf.attack_cost import _model_logits


def measure(batch: int, steps: int, arch: str, defense: str | None = None, repeats: int = 2) -> dict[str, float]:
    """Gradient evaluations per second of Foolbox PGD and APGD-CE, and APGD's compile seconds."""
    from attacks.specs import build_attack
    from attacks.target import AttackTarget

    logits, what = _model_logits(arch)
    if defense:
        from bench.core.defense import DefendedClassifier, build_defense

        d = build_defense(defense)
        target = DefendedClassifier(d, {m: logits for m in d.members}).target(d.surrogates()[0], 1)
        what += f" behind {defense}"
    else:
        target = AttackTarget.of_model(jax.jit(logits))
    x = jax.random.uniform(jax.random.key(1), (batch, 32, 32, 3))
    y = jnp.argmax(target.logits(x, jax.random.key(0)), -1)
    out = {"what": what}
    for name, spec, grads in (("pgd", f"pgd(eps=8, steps={steps})", steps),
                              ("apgd", f"apgd_ce(eps=8, steps={steps})", steps + 1)):
        attack = build_attack(spec)
        t0 = time.perf_counter()
        jax.block_until_ready(attack.run(target, x, y, jax.random.key(0)).x_adv)
        first = time.perf_counter() - t0
        best = float("inf")
        for r in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(attack.run(target, x, y, jax.random.key(r + 1)).x_adv)
            best = min(best, time.perf_counter() - t0)
        out[name] = grads * batch / best
        out[f"{name}_first_s"] = first
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--defense", help="attack through this defense (default: the bare model)")
    args = ap.parse_args(argv)
    m = measure(args.batch, args.steps, args.arch, args.defense)
    print(f"model: {m['what']}; batch {args.batch}, {args.steps} steps")
    print(f"Foolbox PGD : {m['pgd']:8.1f} image-gradients/s (first call {m['pgd_first_s']:.1f} s)")
    print(f"APGD-CE     : {m['apgd']:8.1f} image-gradients/s (first call {m['apgd_first_s']:.1f} s, "
          f"with compilation)")
    print(f"ratio APGD / PGD: {m['apgd'] / m['pgd']:.2f}x (goal >= 1.0x)")


if __name__ == "__main__":
    main()
