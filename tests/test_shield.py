"""SHIELD's ensembles: member/quality pairing, votes, specs (no trained models needed)."""

from __future__ import annotations

import pytest

from bench.defense import build_defense
from bench.registry import SpecError


def test_shield_pairs_slq_with_each_vaccinated_model() -> None:
    d = build_defense("shield()")
    assert repr(d) == "shield()" and d.vote == "majority" and d.randomized
    views = d.views()
    assert [m for _, m in views] == [f"resnet20-vacc-q{q}" for q in (20, 40, 60, 80)]
    assert all(repr(t) == "slq()" for t, _ in views)  # one SLQ spec, a separate draw per view


def test_mq_minus_q_and_mq_times_q() -> None:
    mq = build_defense("shield_mq()")
    assert [(repr(t), m) for t, m in mq.views()] == [
        (f"jpeg(quality={q})", f"resnet20-vacc-q{q}") for q in (20, 40, 60, 80)]
    mxq = build_defense("shield_mxq(qualities=(20, 80))")
    assert repr(mxq) == "shield_mxq(qualities=(20, 80))"
    assert sorted((repr(t), m) for t, m in mxq.views()) == sorted(
        (f"jpeg(quality={q})", f"resnet20-vacc-q{m}") for q in (20, 80) for m in (20, 80))
    assert not mxq.randomized


def test_single_vaccinated_model() -> None:
    d = build_defense("vaccinated(quality=20, model=80)")
    assert [(repr(t), m) for t, m in d.views()] == [("jpeg(quality=20)", "resnet20-vacc-q80")]
    assert repr(build_defense("vaccinated(quality=80)")) == "vaccinated(quality=80)"


@pytest.mark.parametrize("spec", ["shield(qualities=())", "shield(qualities=(20, 20))", "shield_mq(qualities=(0,))",
                                  "vaccinated(quality=101)", "sheild()"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(SpecError):
        build_defense(spec)
