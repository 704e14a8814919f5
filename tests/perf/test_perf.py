"""The cost script's breakdown of stored crafting times (bench/perf/attack_cost.py)."""

import pytest

from bench.perf.attack_cost import crafting_minutes


def test_crafting_minutes_splits_adaptive_from_shared():
    result = {"attacks": [
        {"knowledge": "gray-box", "attack_s_per_image": 0.06, "n": 1000},   # 1 min
        {"knowledge": "transfer", "attack_s_per_image": 0.12, "n": 500},    # 1 min
        {"knowledge": "adaptive", "attack_s_per_image": 0.3, "n": 1000},    # 5 min
        {"knowledge": "adaptive", "attack_s_per_image": 1.5, "n": 200},     # 5 min
    ]}
    c = crafting_minutes(result)
    assert c["adaptive"] == pytest.approx(10.0) and c["shared"] == pytest.approx(2.0)


def test_crafting_minutes_of_a_result_without_attacks_is_zero():
    assert crafting_minutes({"attacks": []}) == {"adaptive": 0.0, "shared": 0.0}
