"""Survivor probe: further attacks on the images an adaptive worst-case ensemble left robust.

A robust-accuracy number is worth publishing only when the strongest attack one can mount no
longer lowers it (Carlini et al. 2019, "On Evaluating Adversarial Robustness", §5). The
``worst_case`` ensemble (``attacks.worst_case``) stores, per image, which stage broke it, ``.``
for the images it left robust; this probe takes those survivors of one defense from the stored
result (or, while a protocol is still being scored, from its job partials), runs attacks the
protocol does not run through each surrogate gradient the defense offers, and counts the
survivors each breaks under fresh scoring draws:

    python -m bench.experiments.survivors --protocol cifar10-standard-v2 --defense 'tvd(weight=0.05)' \\
        --eps 4 --attack 'apgd_t(eps=4, n_targets=9, steps=500)' --partials leaderboards/partials

It changes no stored number; a probe that breaks survivors says the row is still too high and
which attack the protocol should add. Images are judged as the ensemble judges its survivors: an
image is broken when the defended classifier is wrong in at least half of ``draws`` fresh draws
of its randomness (one draw for a deterministic defense). For a randomized defense the survivors
are right in only some draws, so the probe also prints the survivors' mean accuracy over the
draws after its attack, and ``--eot K`` asks whether more EOT samples per gradient than the
protocol's K would break them (Athalye et al., ICML 2018, §4.2).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.eval.protocol import Protocol


@dataclass(frozen=True)
class ProbeRow:
    """What one attack through one surrogate did to the survivors.

    Attributes:
        attack: the attack's spec; ``surrogate``: the gradient it used (None: gradient-free).
        survivors: images probed; ``broken``: how many it broke (wrong in >= half the draws).
        broken_positions: their positions in the protocol's index set.
        seconds: crafting time.
        accuracy: the survivors' mean accuracy over the draws after the attack, in [0, 1].
        eot: EOT samples per gradient the attack used (1 for a deterministic defense).
    """

    attack: str
    surrogate: str | None
    survivors: int
    broken: int
    broken_positions: tuple[int, ...]
    seconds: float
    accuracy: float = 0.0
    eot: int = 1


def stored_survivors(protocol: Protocol, spec: str, eps: float, results: Path | None = None,
                     partials: Path | None = None) -> np.ndarray:
    """Positions (into the protocol's index set) that ``spec``'s worst-case ensemble at ``eps``
    left robust, from its stored result, or from its job partials when ``partials`` is given.

    Raises:
        ValueError: no stored worst-case ensemble of ``spec`` at ``eps``.
    """
    from attacks import build_attack
    from bench.core.defense import build_defense
    from bench.eval.metrics import parse_outcomes

    canonical = build_defense(spec).spec
    if partials is not None:
        from bench.eval.jobs import load_partials

        recs = [r for p in load_partials(partials, protocol.name) if p.header.defense.spec == canonical
                for r in p.attacks if r.outcome is not None and r.info.eps == eps]
        if not recs:
            raise ValueError(f"no {protocol.name} partial of {canonical} holds a worst-case ensemble at eps {eps:g}")
        return np.sort(np.concatenate([r.positions[r.outcome < 0] for r in recs]))
    from bench.eval.results import load_results, results_root

    result = next((r for r in load_results(results or results_root(), protocol.name) if r.spec == canonical), None)
    entry = None if result is None else next(
        (e for e in result.at("adaptive") if e.is_ensemble and e.eps == eps), None)
    if entry is None:
        raise ValueError(f"no stored {protocol.name} result of {canonical} holds a worst-case ensemble at eps {eps:g}")
    plan = next(a for a in protocol.attacks_at("adaptive") if repr(build_attack(a.spec)) == entry.attack)
    return protocol.positions(plan)[parse_outcomes(entry.outcomes) < 0]


def probe(protocol: Protocol, spec: str, positions: np.ndarray, attacks: list[str],
          surrogates: list[str] | None = None, data: str | None = None, seed: int = 0,
          eot: int | None = None) -> list[ProbeRow]:
    """Runs every attack in ``attacks`` through every surrogate on the images at ``positions``.

    Args:
        protocol: the protocol the survivors come from (its images, base model, draws and EOT K).
        spec: the defense.
        positions: positions into the protocol's index set.
        attacks: attack specs; a gradient-free one (``square``) runs once, with no surrogate.
        surrogates: the gradients to try (default: every one the defense offers).
        data: data location, as for ``shieldbench run``.
        seed: the probe's keys (``jax.random.key(seed)``), independent of the protocol's.
        eot: EOT samples per gradient for a randomized defense (default: the protocol's K).

    Raises:
        ValueError: ``eot`` is not a positive integer.
    """
    import time

    import jax

    from attacks import build_attack
    from bench.core.defense import DefendedClassifier, build_defense
    from bench.eval.runner import Runner

    if eot is not None and (isinstance(eot, bool) or not isinstance(eot, int) or eot < 1):
        raise ValueError(f"eot must be a positive integer, got {eot!r}")
    runner = Runner(protocol, data=data)
    defense = build_defense(spec).on_base(protocol.base)
    clf = DefendedClassifier(defense, {m: runner.model(m).logits_fn() for m in defense.members})
    draws = protocol.draws if defense.randomized else 1
    k = (eot or protocol.eot) if defense.randomized else 1
    x, y = runner.x[positions], runner.y[positions]
    key = jax.random.key(seed)
    rows = []
    for a in attacks:
        attack = build_attack(a)
        gradient_free = attack.spec_name == "square"
        for s in [None] if gradient_free else (surrogates or list(defense.surrogates())):
            key, k_attack, k_score = jax.random.split(key, 3)
            target = clf.target(s or "identity", k)
            t0 = time.perf_counter()
            x_adv = np.concatenate([np.asarray(attack.run(target, x[i:i + protocol.batch_size],
                                                          y[i:i + protocol.batch_size],
                                                          jax.random.fold_in(k_attack, i)).x_adv)
                                    for i in range(0, len(x), protocol.batch_size)]) if len(x) else x
            seconds = time.perf_counter() - t0
            right = np.asarray(clf.predict_draws(x_adv, jax.random.split(k_score, draws))) == y[None]
            broken = right.mean(axis=0) < 0.5 if len(x) else np.zeros(0, bool)
            rows.append(ProbeRow(repr(attack), s, len(x), int(broken.sum()),
                                 tuple(int(p) for p in np.asarray(positions)[broken]), seconds,
                                 float(right.mean()) if len(x) else 0.0, k))
    return rows


def render(rows: list[ProbeRow], spec: str, eps: float) -> str:
    """Markdown table of ``rows`` (``tabulate``)."""
    from tabulate import tabulate

    table = [[f"`{r.attack}`", r.surrogate or "—", r.eot, r.survivors, r.broken, f"{100 * r.accuracy:.1f}%",
              f"{r.seconds / 60:.1f}"] for r in rows]
    return (f"`{spec}`: further attacks on the survivors of its worst-case ensemble at {eps:g}/255\n\n"
            + tabulate(table, headers=["attack", "surrogate", "EOT", "survivors", "broken", "survivors' accuracy",
                                       "minutes"], tablefmt="github"))


def main(argv: list[str] | None = None) -> int:
    from bench.eval.protocol import load_protocol

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", default="cifar10-standard-v2")
    p.add_argument("--defense", required=True, help="defense spec, e.g. 'tvd(weight=0.05)'")
    p.add_argument("--eps", type=float, required=True, help="the ensemble's Linf budget in /255")
    p.add_argument("--attack", action="append", required=True, help="an attack spec (repeatable)")
    p.add_argument("--surrogate", action="append", help="a surrogate to try (repeatable; default: all)")
    p.add_argument("--partials", type=Path, help="read the survivors from job partials under this directory")
    p.add_argument("--results", type=Path, help="results root (default leaderboards/results)")
    p.add_argument("--data", help="data location (as for `shieldbench run`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eot", type=int, help="EOT samples per gradient for a randomized defense (default: the protocol's K)")
    args = p.parse_args(argv)
    protocol = load_protocol(args.protocol)
    positions = stored_survivors(protocol, args.defense, args.eps, args.results, args.partials)
    rows = probe(protocol, args.defense, positions, args.attack, args.surrogate, args.data, args.seed, args.eot)
    print(render(rows, args.defense, args.eps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
