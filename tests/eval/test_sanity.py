"""Evaluation sanity flags on hand-made results rows."""

from __future__ import annotations

from bench.eval.sanity import sanity_flags
from bench.eval.schema import Result
from tests.reports.test_leaderboard import attack, make_result


def e(knowledge: str, spec: str, acc: float, eps: float, n: int = 1000, eot: int = 1) -> dict:
    return {**attack(knowledge, spec, acc, eps=eps), "n": n, "eot": eot}


def row(*entries: dict) -> Result:
    return Result.from_json(make_result("x()", attacks=list(entries)), "a test row")


def test_no_flags_for_a_consistent_row() -> None:
    r = row(e("gray-box", "pgd(eps=8, steps=20)", 0.5, 8), e("transfer", "pgd(eps=8, steps=20)", 0.6, 8),
            e("adaptive", "pgd(eps=8, steps=50)", 0.1, 8), e("adaptive", "pgd(eps=8, steps=100)", 0.095, 8),
            e("adaptive", "pgd(eps=255, steps=50)", 0.0, 255))
    assert sanity_flags(r) == []


def test_adaptive_above_gray_box_and_transfer() -> None:
    r = row(e("gray-box", "pgd(eps=8, steps=20)", 0.2, 8), e("transfer", "fgsm(eps=8)", 0.3, 8),
            e("adaptive", "pgd(eps=8, steps=50)", 0.4, 8))
    assert sanity_flags(r) == ["A>G", "A>T"]
    # within the noise margin: no flag
    r = row(e("gray-box", "pgd(eps=8, steps=20)", 0.2, 8), e("adaptive", "pgd(eps=8, steps=50)", 0.21, 8))
    assert sanity_flags(r) == []


def test_unbounded_and_unconverged() -> None:
    assert sanity_flags(row(e("adaptive", "pgd(eps=255, steps=50)", 0.3, 255))) == ["unbounded"]
    r = row(e("adaptive", "pgd(eps=8, steps=25)", 0.40, 8, n=200), e("adaptive", "pgd(eps=8, steps=50)", 0.20, 8))
    assert sanity_flags(r) == ["steps"]
    r = row(e("adaptive", "pgd(eps=8, steps=25)", 0.22, 8, n=200), e("adaptive", "pgd(eps=8, steps=50)", 0.20, 8))
    assert sanity_flags(r) == []  # 2 points on 200 images is noise (margin 2 x 2.9 points)


def test_unconverged_needs_at_least_as_many_eot_samples() -> None:
    # the longer attack with 2 K EOT samples still falls: flagged
    r = row(e("adaptive", "pgd(eps=8, steps=50)", 0.40, 8, eot=4), e("adaptive", "pgd(eps=8, steps=100)", 0.20, 8, eot=8))
    assert sanity_flags(r) == ["steps"]
    # fewer EOT samples on the longer attack: not the doubling the flag is about
    r = row(e("adaptive", "pgd(eps=8, steps=50)", 0.40, 8, eot=4), e("adaptive", "pgd(eps=8, steps=100)", 0.20, 8, eot=2))
    assert sanity_flags(r) == []


def stage(attack: str, surrogate: str | None, broke: int, check: bool = False, round: int = 0) -> dict:
    out = {"attack": attack, "surrogate": surrogate, "check": check, "ran": 100, "seconds": 1.0, "broke": broke,
           "robust_after": 0.0}
    return out | ({"round": round} if round else {})


def worst(n: int, *stages: dict) -> dict:
    out = e("adaptive", "worst_case(...)", 0.1, 8, n=n)
    out["stages"] = list(stages)
    return out


def test_ensemble_flags_count_images_per_stage_kind() -> None:
    quiet = worst(1000, stage("pgd(eps=8)", "identity", 300), stage("pgd(eps=8)", "cubic", 5),
                  stage("square(eps=8)", None, 5), stage("apgd_ce(eps=8, steps=200)", "identity", 5, check=True))
    assert sanity_flags(row(quiet)) == []  # 5 of 1,000 images is within the 0.5% margin
    loud = worst(1000, stage("pgd(eps=8)", "identity", 300), stage("pgd(eps=8)", "cubic", 4),
                 stage("apgd_ce(eps=8)", "ste", 4), stage("square(eps=8)", None, 6),
                 stage("apgd_ce(eps=8, steps=200)", "identity", 6, check=True))
    assert sanity_flags(row(loud)) == ["square", "surrogate", "check"]  # 4 + 4 non-default breaks add up
    # on 200 images the floor is 2 images, not 1: two breaks are still noise, three are not
    assert sanity_flags(row(worst(200, stage("pgd(eps=8)", "identity", 50), stage("square(eps=8)", None, 2)))) == []
    assert sanity_flags(row(worst(200, stage("pgd(eps=8)", "identity", 50), stage("square(eps=8)", None, 3)))) == [
        "square"]
    # a check stage through a non-default surrogate counts for "check" only
    r = row(worst(1000, stage("pgd(eps=8)", "identity", 300), stage("apgd_ce(eps=8)", "cubic", 9, check=True)))
    assert sanity_flags(r) == ["check"]


def test_escalation_counts_apart_from_the_check_and_flags_a_last_round_that_still_broke() -> None:
    long = "apgd_ce(eps=8, steps=1000, restarts=4)"
    base = [stage("pgd(eps=8)", "identity", 300), stage("apgd_ce(eps=8, steps=200)", "identity", 2, check=True)]
    # the escalation broke 9 after the check: the headline has them, but the check itself broke 2 (noise)
    converged = worst(1000, *base, stage(long, "identity", 9, True, 1), stage(long, "identity", 0, True, 2),
                      stage(long, "identity", 0, True, 3))
    assert sanity_flags(row(converged)) == []
    # one image broken in the last round allowed: the stopping rule was never met
    open_ = worst(1000, *base, stage(long, "identity", 9, True, 1), stage(long, "identity", 3, True, 2),
                  stage(long, "cubic", 1, True, 3))
    assert sanity_flags(row(open_)) == ["escalation"]
