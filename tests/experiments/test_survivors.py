"""The survivor probe (``bench.experiments.survivors``) on the tiny learnable world."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

# a weak ensemble at 1/255 leaves survivors for a stronger probe to break
WEAK = "worst_case(attacks=('pgd(eps=1, steps=1)',), check='pgd(eps=1, steps=1)')"


def test_the_probe_finds_the_stored_survivors_and_breaks_them(world: dict[str, Path], tmp_path: Path) -> None:
    from bench import build_defense, load_protocol
    from bench.eval.jobs import save_partial
    from bench.eval.protocol import AttackPlan
    from bench.eval.results import save_result
    from bench.eval.runner import Runner
    from bench.experiments.survivors import probe, render, stored_survivors

    p = dataclasses.replace(load_protocol("tiny"), attacks=(AttackPlan(WEAK, ("adaptive",)),))
    result = Runner(p).run(build_defense("identity()"))
    save_result(tmp_path / "results", result)
    survivors = stored_survivors(p, "identity()", 1.0, results=tmp_path / "results")
    entry = result.at("adaptive")[0]
    assert 0 < len(survivors) == entry.outcomes.count(".")
    # the partials of a protocol still being scored give the same images
    save_partial(tmp_path / "partials", Runner(p).records(build_defense("identity()")))
    assert np.array_equal(stored_survivors(p, "identity()", 1.0, partials=tmp_path / "partials"), survivors)
    with pytest.raises(ValueError, match="no stored tiny result of identity\\(\\) holds a worst-case ensemble at eps 8"):
        stored_survivors(p, "identity()", 8.0, results=tmp_path / "results")

    rows = probe(p, "identity()", survivors, ["pgd(eps=8, steps=5)", "square(eps=8, queries=20)"])
    assert [(r.attack, r.surrogate) for r in rows] == [("pgd(eps=8, steps=5)", "identity"),
                                                       ("square(eps=8, queries=20)", None)]
    pgd = rows[0]
    assert pgd.survivors == len(survivors) and pgd.broken > len(survivors) // 2  # 8/255 on a bare model
    assert set(pgd.broken_positions) <= set(survivors.tolist()) and len(pgd.broken_positions) == pgd.broken
    assert "| `pgd(eps=8, steps=5)`" in render(rows, "identity()", 1.0)
    # a deterministic defense: one draw, one EOT sample; accuracy is the share of survivors left right
    assert pgd.eot == 1 and pgd.accuracy == pytest.approx(1 - pgd.broken / pgd.survivors)
    with pytest.raises(ValueError, match="eot must be a positive integer, got 0"):
        probe(p, "identity()", survivors, ["pgd(eps=8, steps=5)"], eot=0)


def test_the_probe_uses_the_asked_eot_count_on_a_randomized_defense(world: dict[str, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import load_protocol
    from bench.core.defense import DefendedClassifier
    from bench.experiments.survivors import probe

    p = load_protocol("tiny")
    asked = []
    original = DefendedClassifier.target
    monkeypatch.setattr(DefendedClassifier, "target", lambda self, s, k: asked.append(k) or original(self, s, k))
    (row,) = probe(p, "slq()", np.arange(4), ["pgd(eps=8, steps=2)"], surrogates=["identity"], eot=3)
    assert asked == [3] and row.eot == 3 and row.survivors == 4
    assert 0.0 <= row.accuracy <= 1.0 and row.broken == len(row.broken_positions)
    (row,) = probe(p, "slq()", np.arange(4), ["pgd(eps=8, steps=2)"], surrogates=["identity"])
    assert asked[-1] == p.eot and row.eot == p.eot  # default: the protocol's K
