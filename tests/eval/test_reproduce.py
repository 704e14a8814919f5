"""What check expects of a re-run: per-image outcomes, flips, and the sampling-noise tolerance."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from bench.reports.leaderboard import compare, format_changes
from bench.eval.reproduce import Flips, describe_flips, flips, noise_tolerance, outcomes
from bench.eval.results import ResultsError, pack_correct, unpack_correct, validate_result
from tests.reports.test_leaderboard import attack, make_result, typed

PGD = "pgd(eps=8, steps=20)"


def with_outcomes(result: dict, rng: np.random.Generator) -> dict:
    """``result`` with random per-image outcomes whose means match its numbers' draws."""
    r = copy.deepcopy(result)
    n = r["data"]["n"]

    def rows(stats: dict) -> list[str]:
        out = []
        for acc in stats["draws"]:
            bits = np.zeros(n, bool)
            bits[rng.choice(n, int(round(acc * n)), replace=False)] = True
            out.append(bits)
        return pack_correct(np.stack(out))

    r["clean_correct"] = rows(r["clean_accuracy"])
    for e in r["attacks"]:
        e["n"] = n
        e["correct"] = rows(e["robust_accuracy"])
    return r


@pytest.mark.parametrize("n", [1, 7, 8, 9, 200])
def test_packed_outcomes_round_trip(n: int) -> None:
    correct = np.random.default_rng(n).random((3, n)) < 0.5
    packed = pack_correct(correct)
    assert len(packed) == 3 and all(len(r) == 2 * ((n + 7) // 8) for r in packed)
    np.testing.assert_array_equal(unpack_correct(packed, n), correct)
    np.testing.assert_array_equal(unpack_correct(pack_correct(correct[0]), n), correct[:1])  # one draw: [1, n]


def test_validation_names_a_bad_outcome_string() -> None:
    r = with_outcomes(make_result("a()"), np.random.default_rng(0))
    validate_result(r, "a.json")
    bad = copy.deepcopy(r)
    bad["attacks"][0]["correct"] = [r["attacks"][0]["correct"][0][:-2]]  # 8 bits short
    with pytest.raises(ResultsError, match=r"a\.json: 'attacks\[0\]\.correct' must be 1 hex string\(s\) of 200 bits"):
        validate_result(bad, "a.json")
    bad = copy.deepcopy(r)
    bad["clean_correct"] = r["clean_correct"] * 2  # two draws for a one-draw result
    with pytest.raises(ResultsError, match="'clean_correct' must be 1 hex string"):
        validate_result(bad, "a.json")
    bad = copy.deepcopy(r)
    bad["clean_correct"] = ["zz" * 25]
    with pytest.raises(ResultsError, match="'clean_correct'"):
        validate_result(bad, "a.json")


def test_flips_count_images_per_metric_and_say_when_nothing_was_stored() -> None:
    stored = with_outcomes(make_result("a()", attacks=[attack("gray-box", PGD, 0.1)]), np.random.default_rng(1))
    assert flips(typed(stored), typed(stored)) == []
    assert describe_flips([]) == "no image's outcome flipped"
    fresh = copy.deepcopy(stored)
    pgd = outcomes(typed(stored))[f"gray-box {PGD}"]
    right = np.flatnonzero(pgd[0])[:3]  # three images the defense got right: now wrong
    wrong = np.flatnonzero(~pgd[0])[:1]  # one it got wrong: now right
    changed = pgd.copy()
    changed[0, right], changed[0, wrong] = False, True
    fresh["attacks"][0]["correct"] = pack_correct(changed)
    assert flips(typed(stored), typed(fresh)) == [Flips(f"gray-box {PGD}", lost=3, gained=1, compared=200)]
    assert (describe_flips(flips(typed(stored), typed(fresh)))
            == f"4 image outcome(s) flipped (gray-box {PGD} 3 lost, 1 gained)")
    assert flips(typed(make_result("a()")), typed(fresh)) is None  # an older result: no per-image records


def test_noise_tolerance_is_three_standard_errors_and_at_least_one_image() -> None:
    det = typed(make_result("a()", attacks=[attack("gray-box", PGD, 0.1)]))
    assert noise_tolerance(det, "clean") == pytest.approx(1 / 200)
    assert noise_tolerance(det, f"gray-box {PGD}") == pytest.approx(1 / 200)
    assert noise_tolerance(det, "gray-box fgsm(eps=8)") is None
    rnd = typed(make_result("r()", randomized=True, draws=5, clean_std=0.01,
                            attacks=[attack("gray-box", PGD, 0.3, std=0.02, draws=5)]))
    assert noise_tolerance(rnd, "clean") == pytest.approx(3 * math.sqrt(2 / 5) * 0.01)
    assert noise_tolerance(rnd, f"gray-box {PGD}") == pytest.approx(3 * math.sqrt(2 / 5) * 0.02)


def test_auto_tolerance_lets_noise_through_and_catches_a_two_image_regression() -> None:
    """The issue's case: a deterministic defense's numbers moving by 1-2 points passed a fixed 0.02."""
    stored = typed([make_result("det()", attacks=[attack("gray-box", PGD, 0.10)]),
                    make_result("rnd()", randomized=True, draws=5,
                                attacks=[attack("gray-box", PGD, 0.30, std=0.02, draws=5)])])
    fresh = typed([make_result("det()", attacks=[attack("gray-box", PGD, 0.09)]),  # two images of 200
                   make_result("rnd()", randomized=True, draws=5,
                               attacks=[attack("gray-box", PGD, 0.33, std=0.02, draws=5)])])
    # one fixed width gets both wrong: the regression passes, the randomized defense's noise fails
    assert [c.defense for c in compare(stored, fresh, tolerance=0.02)] == ["rnd()"]
    changes = compare(stored, fresh, tolerance=None)
    assert [(c.defense, c.metric) for c in changes] == [("det()", f"gray-box {PGD}")]  # 3 points of noise pass
    assert changes[0].allowed == pytest.approx(0.005)
    assert "0.50 pp" in format_changes(changes)
    one_image = typed([make_result("det()", attacks=[attack("gray-box", PGD, 0.095)])])
    assert compare(stored[:1], one_image, tolerance=None) == []
