"""Leaderboard pictures from results of the tiny world (matplotlib is a test dependency)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")


def test_curves_scatter_and_gallery(world, tmp_path: Path) -> None:
    import dataclasses

    from bench import build_defense, load_protocol
    from bench.experiments.gallery import gallery
    from bench.reports.plots import curve, robustness_curves, tradeoff_scatter
    from bench.eval.protocol import AttackPlan
    from bench.eval.runner import Runner

    p = dataclasses.replace(load_protocol("tiny"), attacks=(
        AttackPlan("fgsm(eps=4)", ("gray-box",)), AttackPlan("fgsm(eps=8)", ("gray-box",)),
        AttackPlan("pgd(eps=8, steps=2)", ("gray-box", "adaptive"))))
    runner = Runner(p)
    results = [runner.run(build_defense(s)) for s in ("identity()", "bitdepth(bits=3)")]
    eps, acc = curve(results[0], "gray-box")
    assert eps == [0.0, 4.0, 8.0] and acc[0] == results[0].clean_accuracy.mean
    assert acc[2] == min(e.robust for e in results[0].at("gray-box") if e.eps == 8.0)
    for png in (robustness_curves(results), tradeoff_scatter(results),
                gallery(["bitdepth(bits=3)", "jpeg(quality=50)"], attack="pgd(eps=8, steps=2)")):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_curve_uses_a_subset_only_where_no_full_set_entry_exists() -> None:
    from tests.reports.test_leaderboard import attack, make_result, typed

    from bench.reports.plots import curve

    subset = dict(attack("adaptive", "pgd(eps=4, steps=50)", 0.30, eps=4.0), n=100)   # only measured on 100 images
    full8 = dict(attack("adaptive", "pgd(eps=8, steps=50)", 0.10), n=200)
    sanity8 = dict(attack("adaptive", "pgd(eps=8, steps=100)", 0.05), n=50)  # a subset: not the headline
    eps, acc = curve(typed(make_result("a()", 0.9, [subset, full8, sanity8])), "adaptive")
    assert eps == [0.0, 4.0, 8.0] and acc == [0.9, 0.30, 0.10]
