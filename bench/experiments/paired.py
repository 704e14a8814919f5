"""Paired convergence check: adaptive attacks at one eps, compared on the images they share.

The ``steps`` sanity flag (``bench.eval.sanity``) compares a protocol's main adaptive attack (say
PGD-50 with EOT K = 4 on 1,000 images) with its sanity attack (PGD-100 with K = 8 on 200 of
them) from the stored results alone, which hold only accuracies. The two are measured on
different image sets, so the flag needs a margin of two binomial standard errors of the smaller
set: about 6 points at 200 images and 20% accuracy. That is too coarse to tell an attack that
has converged from one that is still gaining a few points.

This check re-scores both attacks from the adversarial-example cache (crafting only what is
missing), keeps the per-image outcomes, and reports each attack's robust accuracy on the
images *both* were run on, where the sampling noise of the image choice cancels:

    python -m bench.experiments.paired --protocol cifar10-standard --defense 'quilting()'

Carlini et al. 2019 ("On Evaluating Adversarial Robustness", §5.2) ask for exactly this kind of
evidence: that more iterations (and, for randomized defenses, more EOT samples) no longer help.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from bench.eval.metrics import AttackRecords
from bench.eval.protocol import Protocol


@dataclass(frozen=True)
class PairedRow:
    """One adaptive attack's robust accuracy on the images shared by its eps group.

    Attributes:
        attack: the attack's spec, e.g. ``pgd(eps=8, steps=50)``.
        eps: Linf budget in /255.
        eot: EOT samples per gradient (1 for deterministic defenses).
        n_run: images the attack was run on.
        n_shared: images shared by every attack of the group (the ones compared here).
        accuracy: mean robust accuracy on the shared images, over the R scoring draws.
        draws: the accuracy of each draw on the shared images.
    """

    attack: str
    eps: float
    eot: int
    n_run: int
    n_shared: int
    accuracy: float
    draws: tuple[float, ...]


def paired_rows(records: list[AttackRecords]) -> list[PairedRow]:
    """Group adaptive Linf attacks by eps and score each on its group's shared images.

    Args:
        records: per-image records of one defense (``Runner.records(...).attacks``).

    Returns:
        One row per adaptive Linf attack whose eps group has at least two attacks, ordered by
        eps, then by steps and EOT samples (the protocol's order within a group).

    Raises:
        ValueError: the attacks of a group share no image.
    """
    groups: dict[float, list[AttackRecords]] = {}
    for r in records:
        if r.info.knowledge == "adaptive" and r.info.norm == "linf" and r.info.eps is not None:
            groups.setdefault(float(r.info.eps), []).append(r)
    rows = []
    for eps, group in sorted(groups.items()):
        if len(group) < 2:
            continue
        shared = group[0].positions
        for r in group[1:]:
            shared = np.intersect1d(shared, r.positions)
        if len(shared) == 0:
            names = ", ".join(r.info.attack for r in group)
            raise ValueError(f"adaptive attacks at eps {eps:g}/255 share no image: {names}")
        for r in group:
            order = np.argsort(r.positions)
            cols = order[np.searchsorted(r.positions, shared, sorter=order)]
            per_draw = r.correct[:, cols].mean(axis=1)
            rows.append(PairedRow(r.info.attack, eps, r.info.eot, len(r.positions), len(shared),
                                  float(per_draw.mean()), tuple(float(v) for v in per_draw)))
    return rows


def paired_check(protocol: str | Protocol, spec: str, data: str | None = None) -> list[PairedRow]:
    """Runs ``spec``'s adaptive attacks under ``protocol`` (a name or a loaded protocol) and
    pairs them. Cached adversarial examples are re-scored; missing ones are crafted and cached."""
    from bench.core.defense import build_defense
    from bench.eval.protocol import load_protocol
    from bench.eval.jobs import Selection
    from bench.eval.runner import Runner

    p = load_protocol(protocol) if isinstance(protocol, str) else protocol
    defense = build_defense(spec)
    part = Runner(p, data=data).records(defense, selection=Selection(knowledge=("adaptive",)))
    return paired_rows(part.attacks)


def render(rows: list[PairedRow], spec: str) -> str:
    """Markdown table of ``rows`` (``tabulate``)."""
    from tabulate import tabulate

    table = [[f"`{r.attack}`", f"{r.eps:g}/255", r.eot, r.n_run, r.n_shared, f"{100 * r.accuracy:.1f}%",
              " ".join(f"{100 * d:.1f}" for d in r.draws)] for r in rows]
    head = ["adaptive attack", "eps", "EOT K", "images run", "images shared", "robust acc. (shared)", "per draw"]
    return f"`{spec}`: adaptive attacks compared on the images they share\n\n" + tabulate(
        table, headers=head, tablefmt="github")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--protocol", default="cifar10-standard")
    p.add_argument("--defense", required=True, help="defense spec, e.g. 'quilting()'")
    p.add_argument("--data", help="data location (as for `shieldbench run`)")
    args = p.parse_args(argv)
    rows = paired_check(args.protocol, args.defense, args.data)
    if not rows:
        print(f"{args.protocol} has no eps with two adaptive Linf attacks; nothing to pair")
        return 1
    print(render(rows, args.defense))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
