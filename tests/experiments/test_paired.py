"""Paired convergence check (bench.experiments.paired): adaptive attacks compared on the images they share."""

from __future__ import annotations

import numpy as np
import pytest

from bench.eval.metrics import AttackInfo, AttackRecords
from bench.experiments.paired import paired_rows, render


def _rec(attack: str, eps: float, positions: list[int], correct: list[list[bool]], eot: int = 4,
         knowledge: str = "adaptive") -> AttackRecords:
    pos = np.asarray(positions)
    n = len(pos)
    info = AttackInfo(knowledge, attack, "pgd", "linf", eps, "d()", eot, None)
    return AttackRecords(info, 3072, pos, np.ones(n, bool), np.zeros(n), np.zeros(n),
                         np.asarray(correct, bool), None, 1.0)


def test_attacks_are_scored_on_the_shared_images_only() -> None:
    # the long attack ran on images 1 and 3 (stored out of order); the short one on 0..3
    short = _rec("pgd(eps=8, steps=50)", 8.0, [0, 1, 2, 3], [[1, 1, 0, 0], [1, 0, 0, 0]])
    long = _rec("pgd(eps=8, steps=100)", 8.0, [3, 1], [[0, 1], [0, 0]], eot=8)
    other_eps = _rec("pgd(eps=4, steps=50)", 4.0, [0, 1], [[1, 1], [1, 1]])  # alone at its eps: not paired
    gray = _rec("pgd(eps=8, steps=20)", 8.0, [0, 1, 2, 3], [[0, 0, 0, 0], [0, 0, 0, 0]], knowledge="gray-box")
    rows = paired_rows([short, long, other_eps, gray])
    assert [r.attack for r in rows] == ["pgd(eps=8, steps=50)", "pgd(eps=8, steps=100)"]
    s, t = rows
    assert (s.n_run, s.n_shared, t.n_run, t.n_shared) == (4, 2, 2, 2)
    # short on images {1, 3}: draw 0 -> [1, 0], draw 1 -> [0, 0]; long on image 1: [1, 0], image 3: [0, 0]
    assert s.draws == (0.5, 0.0) and s.accuracy == pytest.approx(0.25)
    assert t.draws == (0.5, 0.0) and t.eot == 8
    table = render(rows, "d()")
    assert "pgd(eps=8, steps=100)" in table and "25.0%" in table


def test_disjoint_image_sets_are_an_error() -> None:
    a = _rec("pgd(eps=8, steps=50)", 8.0, [0, 1], [[1, 1]])
    b = _rec("pgd(eps=8, steps=100)", 8.0, [2, 3], [[1, 1]])
    with pytest.raises(ValueError, match=r"eps 8/255 share no image: pgd\(eps=8, steps=50\), pgd\(eps=8, steps=100\)"):
        paired_rows([a, b])


def test_paired_check_on_the_tiny_world(world) -> None:
    import dataclasses

    from bench import load_protocol
    from bench.experiments.paired import paired_check
    from bench.eval.protocol import AttackPlan

    base = load_protocol("tiny")
    p = dataclasses.replace(base, attacks=(AttackPlan("pgd(eps=8, steps=2)", ("adaptive",)),
                                           AttackPlan("pgd(eps=8, steps=4)", ("adaptive",), n=20)))
    rows = paired_check(p, "identity()")
    assert [r.attack for r in rows] == ["pgd(eps=8, steps=2)", "pgd(eps=8, steps=4)"]
    assert [(r.n_run, r.n_shared) for r in rows] == [(40, 20), (20, 20)]
    assert all(len(r.draws) == 1 and r.eot == 1 for r in rows)  # deterministic: one draw, no EOT
    # the same examples from the cache give the same numbers
    assert paired_check(p, "identity()") == rows
