"""The cost script's breakdown of stored crafting times (bench/perf/attack_cost.py)."""

import pytest

from bench.perf.attack_cost import crafting_minutes
from tests.reports.test_leaderboard import attack, make_result, typed


def test_crafting_minutes_splits_adaptive_from_shared():
    def timed(knowledge: str, spec: str, seconds: float, n: int) -> dict:
        return {**attack(knowledge, spec, 0.1), "attack_s_per_image": seconds, "n": n}

    result = typed(make_result("a()", attacks=[
        timed("gray-box", "fgsm(eps=8)", 0.06, 1000),   # 1 min
        timed("transfer", "fgsm(eps=8)", 0.12, 500),    # 1 min
        timed("adaptive", "pgd(eps=8)", 0.3, 1000),     # 5 min
        timed("adaptive", "apgd_ce(eps=8)", 1.5, 200),  # 5 min
    ]))
    c = crafting_minutes(result)
    assert c["adaptive"] == pytest.approx(10.0) and c["shared"] == pytest.approx(2.0)


def test_crafting_minutes_of_a_result_without_attacks_is_zero():
    assert crafting_minutes(typed(make_result("a()", attacks=[]))) == {"adaptive": 0.0, "shared": 0.0}
