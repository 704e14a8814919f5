"""Training: loss goes down, determinism, checkpoint round trip and exact resume."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.data import CIFAR10_CLASSES, Dataset
from bench.zoo.train import CheckpointError, TrainConfig, augment, fit


def toy_dataset(n: int = 128, seed: int = 0) -> Dataset:
    """Ten classes told apart by the mean colour of the image: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.int32)
    base = (labels[:, None, None, None] * 25).astype(np.float32)
    images = np.clip(base + rng.normal(0, 8, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    return Dataset("cifar10", "train", images, labels, CIFAR10_CLASSES, "toy", "0" * 64, "x")


CFG = TrainConfig(arch="resnet8", epochs=4, batch_size=16, lr=0.2, warmup_epochs=0.5)


def same_params(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_a_few_epochs_lower_the_loss(tmp_path: Path) -> None:
    _, meta = fit(CFG, toy_dataset(), run_dir=tmp_path)
    losses = [h["train_loss"] for h in meta["history"]]
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0]
    assert (tmp_path / "checkpoint.msgpack").is_file()


def test_resume_equals_uninterrupted_and_is_deterministic(tmp_path: Path) -> None:
    data = toy_dataset()
    cfg = TrainConfig(arch="resnet8", epochs=3, batch_size=32)
    _, m1 = fit(cfg, data, run_dir=tmp_path / "a", max_epochs=1)
    assert m1["epoch"] == 1
    resumed, m2 = fit(cfg, data, run_dir=tmp_path / "a")
    straight, m3 = fit(cfg, data, run_dir=tmp_path / "b")
    assert m2["epoch"] == m3["epoch"] == 3
    assert same_params(resumed["params"], straight["params"])
    assert same_params(resumed["opt_state"], straight["opt_state"])
    other, _ = fit(TrainConfig(arch="resnet8", epochs=3, batch_size=32, seed=1), data, run_dir=tmp_path / "c")
    assert not same_params(other["params"], straight["params"])


def test_checkpoint_of_another_config_or_corrupt_is_refused(tmp_path: Path) -> None:
    data = toy_dataset(64)
    fit(TrainConfig(arch="resnet8", epochs=2, batch_size=32), data, run_dir=tmp_path, max_epochs=1)
    with pytest.raises(CheckpointError, match="different configuration"):
        fit(TrainConfig(arch="resnet8", epochs=2, batch_size=32, lr=0.2), data, run_dir=tmp_path)
    ckpt = tmp_path / "checkpoint.msgpack"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        fit(TrainConfig(arch="resnet8", epochs=2, batch_size=32), data, run_dir=tmp_path)


def test_fine_tuning_refuses_to_resume_from_other_start_weights(tmp_path: Path) -> None:
    # a vaccinated model resumed after its base model was retrained would mix two starts
    data = toy_dataset(64)
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=32, init_from="base")
    start, _ = fit(TrainConfig(arch="resnet8", epochs=1, batch_size=32), data, run_dir=tmp_path / "base")
    init = {"params": start["params"], "batch_stats": start["batch_stats"]}
    _, meta = fit(cfg, data, run_dir=tmp_path / "ft", init_variables_=init, init_sha256="a" * 64, max_epochs=1)
    assert meta["init_from_sha256"] == "a" * 64
    with pytest.raises(CheckpointError, match="started from weights with sha256 aaaa"):
        fit(cfg, data, run_dir=tmp_path / "ft", init_variables_=init, init_sha256="b" * 64)
    _, meta = fit(cfg, data, run_dir=tmp_path / "ft", init_variables_=init, init_sha256="a" * 64)
    assert meta["epoch"] == 2 and meta["init_from_sha256"] == "a" * 64


def test_training_transform_is_applied(tmp_path: Path) -> None:
    # a transform that blanks every image leaves nothing to learn: the loss cannot fall far
    # below the label entropy (~2.3), while the same run without it learns (test above)
    from bench.zoo.train import Trainer

    cfg = TrainConfig(arch="resnet8", epochs=4, batch_size=16, lr=0.05, warmup_epochs=0.5, transform="blank()")
    blank = lambda x, key: jnp.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError, match="names transform 'blank\\(\\)'"):
        Trainer(cfg, 4)
    _, meta = fit(cfg, toy_dataset(), run_dir=tmp_path, transform=blank)
    assert meta["history"][-1]["train_loss"] > 2.0


def test_augment_keeps_shape_and_content() -> None:
    x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3))
    y = augment(x, jax.random.key(1))
    assert y.shape == x.shape
    assert not np.allclose(x, y)
    assert np.array_equal(augment(x, jax.random.key(1)), y)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="smaller than one batch"):
        fit(TrainConfig(arch="resnet8", batch_size=500), toy_dataset(64), run_dir=Path("/nonexistent"))


def test_first_warm_restart_cycle_is_the_shorter_run(tmp_path: Path) -> None:
    data = toy_dataset()
    short = TrainConfig(arch="resnet8", epochs=2, batch_size=16, lr=0.2, warmup_epochs=0.5)
    cyc = TrainConfig(arch="resnet8", epochs=4, batch_size=16, lr=0.2, warmup_epochs=0.5, cycles=2)
    a, _ = fit(short, data, run_dir=tmp_path / "short")
    b, meta = fit(cyc, data, run_dir=tmp_path / "cyc", max_epochs=2)
    assert meta["epoch"] == 2 and same_params(a["params"], b["params"])
    c, _ = fit(cyc, data, run_dir=tmp_path / "cyc")  # resumes into the second cycle
    assert not same_params(b["params"], c["params"])


def test_cycles_validation_and_recorded_config() -> None:
    assert "cycles" not in TrainConfig().as_dict()  # older checkpoints and cards keep their identity
    assert TrainConfig(epochs=4, cycles=2).as_dict()["cycles"] == 2
    assert TrainConfig(epochs=4, cycles=2).digest() != TrainConfig(epochs=4).digest()
    for bad in ({"epochs": 5, "cycles": 2}, {"cycles": 0}, {"epochs": 4, "cycles": 2, "schedule": "onecycle"}):
        with pytest.raises(ValueError, match="cycles"):
            TrainConfig(**bad)
