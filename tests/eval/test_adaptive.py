"""The adaptive worst-case ensemble (``bench.eval.adaptive``) on the tiny learnable world."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

# the check repeats a stage's spec so that it compiles nothing new (a deterministic defense's check
# has the stage's EOT count too): the suite stays fast; cifar10-standard-v2's check doubles the steps
ENSEMBLE = ("worst_case(attacks=('pgd(eps=3, steps=3)', 'apgd_ce(eps=3, steps=4)', 'square(eps=3, queries=30)'), "
            "check='apgd_ce(eps=3, steps=4)')")
# one weak stage and the check, and the same with an escalation: the tiny world's check breaks images here
WEAK = "worst_case(attacks=('pgd(eps=3, steps=1)',), check='apgd_ce(eps=3, steps=4)')"
ESCALATING = WEAK[:-1] + ", escalate='apgd_ce(eps=3, steps=4, restarts=2)', rounds=2)"


def _runner(plans):
    from bench import load_protocol
    from bench.eval.runner import Runner

    return Runner(dataclasses.replace(load_protocol("tiny"), attacks=plans))


def test_worst_case_is_per_image_and_at_least_the_standalone_attack(world: dict[str, Path], tmp_path: Path) -> None:
    import jax

    from bench import build_defense, load_model
    from bench.core.defense import DefendedClassifier
    from bench.eval.export import export_examples, find_plan, load_examples
    from bench.eval.metrics import attack_metrics, parse_outcomes
    from bench.eval.protocol import AttackPlan

    runner = _runner((AttackPlan("pgd(eps=3, steps=3)", ("adaptive",)), AttackPlan(ENSEMBLE, ("adaptive",))))
    defense = build_defense("median(size=3)")
    alone, worst = runner.records(defense).attacks
    # an outsider re-scores the exported examples (from the cache) and finds the same survivors
    plan = find_plan(runner, "adaptive", None)
    assert plan.spec == ENSEMBLE
    meta = export_examples(runner, defense, "adaptive", plan, tmp_path / "ex.npz")
    ex = load_examples(tmp_path / "ex.npz")
    assert meta["attack"] == worst.info.attack and np.array_equal(ex["outcome"], worst.outcome)
    clf = DefendedClassifier(defense, {"resnet20": load_model("resnet20").logits_fn()})
    pred = np.asarray(clf.predict(ex["x_adv"], jax.random.key(0)))
    assert np.array_equal(pred == ex["labels"], worst.correct[0])
    assert np.array_equal(ex["indices"], runner.indices[ex["positions"]])
    with pytest.raises(ValueError, match="has no adaptive attack"):
        find_plan(runner, "adaptive", "square(eps=3)")
    # per image, the worst case is at least as strong as the attack it starts with (deterministic: R = 1)
    assert not np.any(worst.correct[0] & ~alone.correct[0])
    # the outcome says exactly which images survived: "." <=> still right under the final score
    assert np.array_equal(worst.outcome < 0, worst.correct[0])
    stages = worst.stages
    assert [s.surrogate for s in stages] == ["identity", "own"] * 2 + [None] + ["identity", "own"]
    assert [s.check for s in stages] == [False] * 5 + [True] * 2
    assert stages[0].ran == 40  # the first stage crafts every image, like the standalone attack
    assert all(b.ran <= a.ran or a.ran == 40 for a, b in zip(stages, stages[1:]))  # survivors only shrink
    m = attack_metrics(worst)
    assert np.array_equal(parse_outcomes(m["outcomes"]), worst.outcome)
    assert m["stages"][-1]["robust_after"] == pytest.approx(np.mean(worst.outcome < 0))
    assert sum(s["broke"] for s in m["stages"]) + int(np.sum(worst.outcome == 0)) == int(np.sum(worst.outcome >= 0))


def test_first_stage_shares_the_cache_with_the_standalone_attack(world: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from attacks.specs import PGD
    from bench import build_defense
    from bench.eval.protocol import AttackPlan

    calls = []
    original = PGD.run
    monkeypatch.setattr(PGD, "run", lambda self, *a: calls.append(repr(self)) or original(self, *a))
    # identity offers one surrogate: the ensemble's PGD stage is the standalone PGD, crafted once
    runner = _runner((AttackPlan("pgd(eps=3, steps=3)", ("adaptive",)), AttackPlan(ENSEMBLE, ("adaptive",))))
    runner.records(build_defense("identity()"))
    assert calls.count("pgd(eps=3, steps=3)") == 2  # 40 images in 2 batches, whatever survives


@pytest.mark.slow  # 2.5 min: EOT through three surrogates
def test_randomized_worst_case_selects_under_fresh_draws(world: dict[str, Path]) -> None:
    from bench import build_defense
    from bench.eval.protocol import AttackPlan

    runner = _runner((AttackPlan(ENSEMBLE, ("adaptive",), n=20),))
    part = runner.records(build_defense("slq()"))
    (worst,) = part.attacks
    assert worst.correct.shape == (2, 20) and worst.info.eot == 2
    # an image broken in every selection draw is never "survived"; survivors may still be wrong in a draw
    assert worst.outcome.shape == (20,) and set(np.unique(worst.outcome)) <= set(range(-1, 10))
    again = runner.records(build_defense("slq()")).attacks[0]  # same seed, same everything (cache or not)
    assert np.array_equal(again.outcome, worst.outcome) and np.array_equal(again.correct, worst.correct)


def test_later_stages_pad_survivors_to_the_smallest_size_that_holds_them(world: dict[str, Path],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from attacks import build_attack
    from attacks.apgd import APGD
    from attacks.target import AttackOutput
    from bench.eval.adaptive import pad_sizes

    assert pad_sizes(32) == (8, 16, 32) and pad_sizes(20) == (5, 10, 20) and pad_sizes(2) == (1, 2)
    seen = []

    def fake_run(self, target, x, y, key):
        seen.append(len(x))
        return AttackOutput(x_adv=x + 0.0, success=np.zeros(len(x), bool))

    monkeypatch.setattr(APGD, "run", fake_run)
    runner = _runner(())
    attack = build_attack("apgd_ce(eps=3, steps=2)")
    batches = [(i, np.arange(n)) for i, n in enumerate([3, 7, 12, 20])]
    x_adv, _, _ = runner.craft("test", attack, batches, lambda b: None, {"case": "padding"}, pad_to=(5, 10, 20))
    assert seen == [5, 10, 20, 20]  # the padding is dropped again
    assert np.array_equal(x_adv, np.concatenate([runner.x[np.arange(n)] for n in [3, 7, 12, 20]]))
    runner.craft("test", attack, batches, lambda b: None, {"case": "padding"}, pad_to=(5, 10, 20))
    assert len(seen) == 4  # cached
    runner.craft("test", attack, batches[:1], lambda b: None, {"case": "padding"}, pad_to=(20,))
    assert seen[4:] == [20]  # the padded size is part of the cache key: another padding is crafted anew


def test_escalation_runs_only_where_the_check_broke_and_recrafts_nothing_before_it(
        world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from attacks import build_attack
    from attacks.apgd import APGD
    from bench import build_defense
    from bench.eval.protocol import AttackPlan

    escalating = build_attack(ESCALATING)
    assert repr(escalating.base()) == repr(build_attack(WEAK))  # the cache key of the stages before it
    defense = build_defense("median(size=3)")
    (plain,) = _runner((AttackPlan(WEAK, ("adaptive",)),)).records(defense).attacks
    calls = []
    original = APGD.run
    monkeypatch.setattr(APGD, "run", lambda self, *a: calls.append(repr(self)) or original(self, *a))
    (esc,) = _runner((AttackPlan(repr(escalating), ("adaptive",)),)).records(defense).attacks
    assert set(calls) <= {"apgd_ce(eps=3, steps=4, restarts=2)"}  # the check came from the cache
    assert [(s.check, s.round) for s in esc.stages] == [(False, 0)] * 2 + [(True, 0)] * 2 + [(True, 1)] * 2 + [
        (True, 2)] * 2
    broke = [int(np.sum(esc.outcome == i)) for i in range(1, len(esc.stages) + 1)]
    assert broke[:4] == [int(np.sum(plain.outcome == i)) for i in range(1, 5)]  # the same stages, the same images
    assert sum(broke[2:4]) > 0, "the tiny world's check should break something here, or this test tests nothing"
    assert len(calls) > 0
    # per surrogate (identity, own): a round runs through it only where its check / last round broke an image
    # (one unit here: the tiny protocol is one batch)
    for j in (0, 1):
        assert (esc.stages[4 + j].ran > 0) == (broke[2 + j] > 0)
        assert (esc.stages[6 + j].ran > 0) == (broke[4 + j] > 0)
    # per image the escalated worst case is at least the plain one, and it says which image survived
    assert not np.any(esc.correct[0] & ~plain.correct[0])
    assert np.array_equal(esc.outcome < 0, esc.correct[0])


def test_escalation_counts_only_the_breaks_fresh_draws_confirm(world: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.eval.adaptive as adaptive
    from bench import build_defense
    from bench.eval.protocol import AttackPlan

    asked = []

    def nothing_confirmed(runner, clf, x, y, draws, stream, batch):
        asked.append((len(x), len(y), stream, batch))
        return 0

    monkeypatch.setattr(adaptive, "confirmed_breaks", nothing_confirmed)
    (esc,) = _runner((AttackPlan(ESCALATING, ("adaptive",)),)).records(build_defense("median(size=3)")).attacks
    checks = [s for s, st in enumerate(esc.stages, start=1) if st.check and not st.round]
    broke = sum(int(np.sum(esc.outcome == s)) for s in checks)
    assert broke > 0, "the tiny world's check should break something here, or this test tests nothing"
    # every check was asked about exactly the images it broke, in draws of its own (per stage and unit)
    assert sum(n for n, m, _, _ in asked) == broke and all(n == m for n, m, _, _ in asked)
    assert all(stream.startswith("confirm|") for _, _, stream, _ in asked)
    assert len({(stream, batch) for _, _, stream, batch in asked}) == len(asked)
    assert all(st.ran == 0 for st in esc.stages if st.round)  # none confirmed: no round ran


def test_confirmed_breaks_rescore_only_a_randomized_defense() -> None:
    from types import SimpleNamespace

    from bench.eval.adaptive import confirmed_breaks

    calls = []

    class Scorer:
        def correct(self, predict_draws, x, y, draws, stream, first_batch):
            calls.append((len(x), draws, stream, first_batch))
            return np.array([[False, True, False], [False, False, False]])  # [R, N]: image 1 right in one draw

    clf = SimpleNamespace(predict_draws=None)
    x, y = np.zeros((3, 2, 2, 3), np.float32), np.zeros(3, np.int64)
    assert confirmed_breaks(Scorer(), clf, x, y, 1, "confirm|s", 7) == 3 and calls == []  # deterministic: as it is
    assert confirmed_breaks(Scorer(), clf, x, y, 2, "confirm|s", 7) == 2 and calls == [(3, 2, "confirm|s", 7)]
    assert confirmed_breaks(Scorer(), clf, x[:0], y[:0], 2, "confirm|s", 7) == 0 and len(calls) == 1


def test_escalation_is_per_surrogate() -> None:
    from bench.eval.adaptive import escalates

    broke = {(0, "identity"): 0, (0, "cubic"): 2, (0, "ste"): 0}  # the check broke 2 images, through cubic
    assert [escalates(broke, 1, s) for s in ("identity", "cubic", "ste")] == [False, True, False]
    broke |= {(1, "identity"): 0, (1, "cubic"): 0, (1, "ste"): 0}  # round 1 (identity, ste skipped) broke nothing
    assert not any(escalates(broke, 2, s) for s in ("identity", "cubic", "ste"))
    broke[1, "cubic"] = 1
    assert [escalates(broke, 2, s) for s in ("identity", "cubic", "ste")] == [False, True, False]
    # a gradient-free check has no surrogate: every surrogate escalates while it broke anything
    assert escalates({(0, None): 1}, 1, "own") and not escalates({(0, None): 0}, 1, "own")


def test_committed_rows_keep_their_outcomes_under_per_surrogate_escalation() -> None:
    """The 19 deterministic cifar10-standard-v2 rows were scored when a round ran through every surrogate;
    every image a round broke there came through a surrogate the per-surrogate rule also runs."""
    from bench import load_protocol
    from bench.eval.adaptive import escalates
    from bench.eval.jobs import load_partials

    root = Path(__file__).resolve().parents[2] / "leaderboards" / "partials"
    p = load_protocol("cifar10-standard-v2")
    escalated = 0
    for part in load_partials(root, p.name):
        for rec in part.attacks:
            if not any(st.round for st in rec.stages):
                continue
            for u in range(0, len(rec.outcome), p.batch_size):
                unit = np.asarray(rec.outcome[u : u + p.batch_size])
                broke: dict[tuple[int, str | None], int] = {}
                for s, st in enumerate(rec.stages, start=1):
                    if not st.check:
                        continue
                    n = int(np.sum(unit == s))
                    if st.round and n:
                        escalated += 1
                        assert escalates(broke, st.round, st.surrogate), (part.header.defense.spec, u, s)
                    broke[st.round, st.surrogate] = n
    assert escalated >= 4  # jpeg(quality=75) 2 units, fd(passes=2), tvd(weight=0.05): this test tests something
