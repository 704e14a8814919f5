"""The runner on a tiny learnable world: metrics, knowledge levels, caching, sanity checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.eval.schema import AttackEntry, Result


@pytest.fixture(scope="session")
def identity_result(world_files: dict[str, Path]) -> Result:
    from tests.bench_world import use_world

    mp = pytest.MonkeyPatch()
    use_world(mp, world_files)
    mp.setenv("SHIELDBENCH_CACHE", str(world_files["data"].parent / "cache"))
    try:
        from bench import build_defense, load_protocol
        from bench.eval.runner import Runner

        return Runner(load_protocol("tiny")).run(build_defense("identity()"))
    finally:
        mp.undo()


def entry(result: Result, knowledge: str, attack: str) -> AttackEntry:
    return next(a for a in result.attacks if a.knowledge == knowledge and a.attack == attack)


def test_identity_result_is_valid_and_sane(identity_result: Result) -> None:
    from bench.eval.results import validate_result

    assert validate_result(identity_result.to_json(), "identity") == identity_result
    r = identity_result
    assert r.clean_accuracy.mean >= 0.8  # the tiny models learned the task
    assert r.clean_accuracy.mean == pytest.approx(r.base_clean_accuracy)
    assert r.draws == 1 and not r.randomized
    # sanity: PGD at 8/255 takes the undefended base model to about 0%
    assert entry(r, "gray-box", "pgd(eps=8, steps=5)").robust <= 0.1
    # no defense eliminates nothing
    assert entry(r, "gray-box", "fgsm(eps=8)").eliminated == 0.0
    # sanity: transfer success <= gray-box success on the base model
    for spec in ("fgsm(eps=8)", "pgd(eps=8, steps=5)"):
        gray, transfer = entry(r, "gray-box", spec), entry(r, "transfer", spec)
        assert transfer.robust >= gray.robust - 0.05
    pgd = entry(r, "gray-box", "pgd(eps=8, steps=5)")
    assert pgd.perturbation.linf <= 8.0 + 1e-3
    df = entry(r, "gray-box", "deepfool_l2(steps=10)")
    assert df.n == 20 and df.l2_threshold == 0.5 and df.eps is None
    assert {p.knowledge for p in r.attacks} == {"gray-box", "transfer", "adaptive"}


def test_bpda_through_identity_equals_plain_pgd(world: dict[str, Path]) -> None:
    from attacks.specs import build_attack
    from bench import build_defense, load_model
    from bench.core.defense import DefendedClassifier

    base = load_model("resnet20")
    plain_logits = base.logits_fn()
    clf = DefendedClassifier(build_defense("identity()"), {"resnet20": plain_logits})
    x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3))
    y = jnp.argmax(base.predict(x), -1)
    attack = build_attack("pgd(eps=8, steps=5)")

    def through_logits(z: jax.Array) -> jax.Array:
        return clf.attack_logits(z, jax.random.split(jax.random.key(9), 1))

    plain = attack.run(plain_logits, x, y, jax.random.key(3))
    through = attack.run(through_logits, x, y, jax.random.key(3))
    # The input gradients agree to float precision; PGD's sign step can still flip a component whose
    # gradient is ~0 (the two graphs compile differently), so x_adv may differ in a rare element.
    def loss(logits_fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
        return lambda z: jnp.sum(jax.nn.log_softmax(logits_fn(z))[jnp.arange(len(y)), y])

    g_plain = jax.grad(loss(plain_logits))(x)
    g_through = jax.grad(loss(through_logits))(x)
    np.testing.assert_allclose(np.asarray(g_through), np.asarray(g_plain), rtol=1e-4,
                               atol=1e-4 * float(jnp.max(jnp.abs(g_plain))))
    differ = np.abs(np.asarray(through.x_adv) - np.asarray(plain.x_adv)) > 1e-6
    assert differ.mean() < 1e-3, f"{differ.sum()} of {differ.size} pixels differ"
    assert np.array_equal(np.asarray(through.success), np.asarray(plain.success))


def test_jpeg_defense_more_steps_do_not_help_the_defense(world: dict[str, Path]) -> None:
    import dataclasses

    from bench import build_defense, load_protocol
    from bench.eval.protocol import AttackPlan
    from bench.eval.runner import Runner

    p = load_protocol("tiny")
    plans = (AttackPlan("pgd(eps=8, steps=3)", ("adaptive",)), AttackPlan("pgd(eps=8, steps=12)", ("adaptive",)))
    runner = Runner(dataclasses.replace(p, attacks=plans))
    r = runner.run(build_defense("jpeg(quality=50)"))
    few, many = (entry(r, "adaptive", a.spec).robust for a in plans)
    assert many <= few + 0.05
    assert r.clean_accuracy.mean >= 0.7


def test_randomized_defense_uses_draws_and_eot(world: dict[str, Path]) -> None:
    import dataclasses

    from bench import build_defense, load_protocol
    from bench.eval.protocol import AttackPlan
    from bench.eval.runner import Runner

    p = dataclasses.replace(load_protocol("tiny"), attacks=(AttackPlan("pgd(eps=8, steps=3)", ("adaptive",)),
                                                            AttackPlan("pgd(eps=8, steps=2)", ("adaptive",), 4, eot=3)))
    r = Runner(p).run(build_defense("slq()"))
    assert r.randomized and r.draws == 2 and len(r.clean_accuracy.draws) == 2
    assert [a.eot for a in r.attacks] == [2, 3]  # the protocol's K, then the attack's own
    assert Runner(p).run(build_defense("identity()")).attacks[1].eot == 1  # deterministic: no EOT
    again = Runner(p).run(build_defense("slq()"))  # same seed -> same numbers
    assert again.clean_accuracy == r.clean_accuracy
    assert again.attacks[0].robust_accuracy == r.attacks[0].robust_accuracy


def test_draws_are_scored_in_one_call_with_the_documented_keys(world: dict[str, Path]) -> None:
    from bench import build_defense, load_model, load_protocol
    from bench.core.defense import DefendedClassifier
    from bench.eval.runner import Runner, _stable_int

    runner = Runner(load_protocol("tiny"))
    clf = DefendedClassifier(build_defense("slq()"), {"resnet20": load_model("resnet20").logits_fn()})
    b = runner.protocol.batch_size
    n = b + 3  # two batches, the second padded to a full one, as the runner does
    x = np.asarray(jax.random.uniform(jax.random.key(0), (n, 32, 32, 3)))
    labels = np.asarray(clf.predict(jnp.asarray(x), jax.random.key(5)))
    got = runner.correct(clf.predict_draws, x, labels, 3, "stream", first_batch=7)
    skey = jax.random.fold_in(runner.root, _stable_int("score|stream"))
    for r in range(3):
        for j, i in enumerate(range(0, n, b)):
            key = jax.random.fold_in(jax.random.fold_in(skey, r), 7 + j)
            xb = np.concatenate([x[i : i + b], np.zeros((b - len(x[i : i + b]), 32, 32, 3), np.float32)])
            want = np.asarray(clf.predict(jnp.asarray(xb), key))[: len(x[i : i + b])] == labels[i : i + b]
            assert np.array_equal(got[r, i : i + b], want), (r, j)
    assert not (got.all(axis=0) | ~got.any(axis=0)).all()  # the draws differ somewhere: the keys matter


def test_attack_once_defend_many_and_damaged_cache(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from attacks.specs import Attack
    from bench import build_defense, load_protocol
    from bench.eval.cache import AdversarialCache
    from bench.eval.protocol import AttackPlan
    from bench.eval.runner import Runner

    p = dataclasses.replace(load_protocol("tiny"), attacks=(AttackPlan("fgsm(eps=8)", ("gray-box",)),))
    calls = []
    original = Attack.run
    monkeypatch.setattr(Attack, "run", lambda self, *a: calls.append(1) or original(self, *a))
    first = Runner(p).run(build_defense("identity()"))
    assert len(calls) == 2  # 40 images in batches of 20
    second = Runner(p).run(build_defense("median(size=3)"))  # reuses the gray-box examples
    assert len(calls) == 2
    files = sorted(AdversarialCache().root.glob("*.npz"))
    assert len(files) == 2
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncate one batch: it is recomputed, not trusted
    third = Runner(p).run(build_defense("identity()"))
    assert len(calls) == 3
    assert third.attacks[0].robust_accuracy == first.attacks[0].robust_accuracy
    assert second.attacks[0].eliminated is not None


def test_missing_transfer_source_is_skipped_not_fatal(world: dict[str, Path], monkeypatch) -> None:
    import dataclasses

    from bench import build_defense, load_protocol
    from bench.eval.protocol import AttackPlan
    from bench.eval.runner import Runner

    p = dataclasses.replace(load_protocol("tiny"), source="resnet56",
                            attacks=(AttackPlan("fgsm(eps=8)", ("gray-box", "transfer")),))
    r = Runner(p).run(build_defense("identity()"))
    assert [s.knowledge for s in r.skipped] == ["transfer"] and "resnet56" in r.skipped[0].reason
    assert [a.knowledge for a in r.attacks] == ["gray-box"]


@pytest.mark.slow
def test_smoke_protocol_on_real_data_with_the_zoo_model(real_data: Path, real_cache: Path) -> None:
    from bench import build_defense, list_models, load_protocol
    from bench.eval.results import validate_result
    from bench.eval.runner import Runner

    if "resnet20" not in list_models():
        pytest.skip("the zoo has no resnet20 yet")
    r = Runner(load_protocol("cifar10-smoke"), data=str(real_data)).run(build_defense("jpeg(quality=75)"))
    validate_result(r, "smoke")
    assert r.clean_accuracy.mean >= 0.8
    gray = entry(r, "gray-box", "pgd(eps=8, steps=10)").robust
    adaptive = entry(r, "adaptive", "pgd(eps=8, steps=10)").robust
    assert adaptive <= gray + 0.05  # the adaptive attack is at least as strong as gray-box
