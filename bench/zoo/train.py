"""Training with optax: SGD + Nesterov, weight decay, cosine or one-cycle, crop + flip.

The recipe follows He et al. 2016 (§4.2) for the augmentation (4-pixel zero padding, random
32x32 crop, horizontal flip) and the optimiser family (SGD, momentum 0.9), with two
departures that suit short CPU schedules: a cosine (or one-cycle) learning-rate schedule with
linear warm-up instead of step decay, and Nesterov momentum. Weight decay is applied to
convolution and dense kernels only (not to BatchNorm scales or biases).

Determinism: the epoch's image order is ``numpy.random.default_rng([seed, epoch])``, the
augmentation key of step ``s`` in epoch ``e`` is ``fold_in(fold_in(key(seed), e), s)``, so a
run resumed from its end-of-epoch checkpoint continues exactly as an uninterrupted one would.

An optional ``transform(x, key) -> x`` (any shieldbench transform, e.g. ``jpeg(quality=20)``)
is applied to every augmented training batch inside the jitted step: this is SHIELD's
"vaccination" (fine-tuning on compressed images, Das et al. 2018).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.core.data import Dataset
from bench.core.io import atomic_write_bytes, cache_root
from bench.zoo.models import create_model, init_variables

Transform = Callable[[jax.Array, jax.Array], jax.Array]
CHECKPOINT = "checkpoint.msgpack"


class CheckpointError(Exception):
    """A checkpoint is unreadable or belongs to a different training configuration."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (stored in checkpoints and model cards).

    Attributes:
        arch: architecture name (``bench.zoo.models.ARCHITECTURES``).
        seed: initialisation, data-order and augmentation seed.
        epochs: total epochs of the schedule.
        batch_size: images per step (the last partial batch of an epoch is dropped).
        lr: peak learning rate.
        momentum: Nesterov momentum.
        weight_decay: L2 coefficient on kernels.
        schedule: ``"cosine"`` (linear warm-up, cosine decay to 0) or ``"onecycle"``.
        warmup_epochs: warm-up length for ``"cosine"``.
        augment: random crop + flip.
        transform: spec of a training-time transform (``None``: none).
        init_from: zoo model whose weights initialise the run (fine-tuning), or ``None``.
        dataset: dataset name for ``bench.load_dataset``.
        cycles: ``"cosine"`` only: the epochs are split into this many equal cosine cycles, each
            with its own warm-up (warm restarts, Loshchilov & Hutter, ICLR 2017). The first
            cycle of ``epochs=2E, cycles=2`` is exactly the run ``epochs=E, cycles=1``.
    """

    arch: str = "resnet20"
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    augment: bool = True
    transform: str | None = None
    init_from: str | None = None
    dataset: str = "cifar10"
    cycles: int = 1

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "onecycle"):
            raise ValueError(f"schedule must be 'cosine' or 'onecycle', got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"invalid training configuration: {self}")
        if self.cycles < 1 or self.epochs % self.cycles or (self.cycles > 1 and self.schedule != "cosine"):
            raise ValueError(f"cycles={self.cycles} must be >= 1, divide epochs={self.epochs}, and needs the "
                             f"cosine schedule (got {self.schedule!r})")

    def as_dict(self) -> dict[str, Any]:
        """The configuration as recorded in checkpoints and cards.

        ``cycles`` is left out when it is 1, so that configurations from before it existed keep
        their identity (run directory, checkpoint check).
        """
        d = dataclasses.asdict(self)
        if d["cycles"] == 1:
            del d["cycles"]
        return d

    def digest(self) -> str:
        """Short hash naming the run directory of this configuration."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class TrainEvent:
    """Progress report passed to the ``on_event`` callback (the library prints nothing)."""

    kind: str  # "start", "step" or "epoch"
    epoch: int
    step: int
    steps_per_epoch: int
    loss: float = float("nan")
    images_per_s: float = float("nan")
    eval_accuracy: float = float("nan")


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD + Nesterov with decoupled-from-BN weight decay and the configured schedule."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        cycle = total // config.cycles
        warmup = min(int(config.warmup_epochs * steps_per_epoch), cycle - 1)
        lr = optax.warmup_cosine_decay_schedule(0.0, config.lr, max(warmup, 1), cycle, 0.0)
        if config.cycles > 1:
            lr = optax.join_schedules([lr] * config.cycles, [cycle * i for i in range(1, config.cycles)])
    else:
        lr = optax.cosine_onecycle_schedule(total, config.lr)
    kernels_only = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)  # noqa: E731
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=kernels_only),
        optax.sgd(lr, momentum=config.momentum, nesterov=True),
    )


def augment(x: jax.Array, key: jax.Array) -> jax.Array:
    """Random crop after 4-pixel zero padding, and random horizontal flip, of ``[B, H, W, C]``."""
    b, h, w, _ = x.shape
    k_off, k_flip = jax.random.split(key)
    padded = jnp.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    offsets = jax.random.randint(k_off, (b, 2), 0, 9)
    crop = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, x.shape[3])))
    x = crop(padded, offsets)
    flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1, :], x)


class Trainer:
    """Jitted train and eval steps for one configuration."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int, transform: Transform | None = None):
        if config.transform is not None and transform is None:
            raise ValueError(f"config names transform {config.transform!r} but none was given")
        self.config = config
        self.model = create_model(config.arch)
        self.tx = make_optimizer(config, steps_per_epoch)
        self.transform = transform

        def loss_fn(params, batch_stats, x, y):
            logits, new = self.model.apply(
                {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, new["batch_stats"]

        def train_step(state, images_u8, labels, key):
            k_aug, k_tf = jax.random.split(key)
            x = images_u8.astype(jnp.float32) / 255.0
            if config.augment:
                x = augment(x, k_aug)
            if self.transform is not None:
                x = self.transform(x, k_tf)
            (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state["params"], state["batch_stats"], x, labels
            )
            updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
            params = optax.apply_updates(state["params"], updates)
            return {"params": params, "batch_stats": batch_stats, "opt_state": opt_state}, loss

        def predict(variables, images_u8):
            return self.model.apply(variables, images_u8.astype(jnp.float32) / 255.0, train=False)

        self.train_step = jax.jit(train_step, donate_argnums=0)
        self.predict = jax.jit(predict)

    def init_state(self, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fresh state from ``key(seed)`` or from given ``{'params', 'batch_stats'}``."""
        if variables is None:
            variables = init_variables(self.model, jax.random.key(self.config.seed), (32, 32, 3))
        return {
            "params": variables["params"],
            "batch_stats": variables["batch_stats"],
            "opt_state": self.tx.init(variables["params"]),
        }

    def accuracy(self, state: dict[str, Any], dataset: Dataset, indices: np.ndarray | None = None,
                 batch_size: int = 500) -> float:
        """Top-1 accuracy of the state's model on ``dataset`` (all images, or ``indices``)."""
        idx = np.arange(len(dataset)) if indices is None else np.asarray(indices)
        variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
        correct = 0
        for i in range(0, len(idx), batch_size):
            sel = idx[i : i + batch_size]
            logits = self.predict(variables, dataset.images[sel])
            correct += int(np.sum(np.asarray(jnp.argmax(logits, -1)) == dataset.labels[sel]))
        return correct / len(idx)


def save_checkpoint(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Atomically writes the train state and ``meta`` (config, epoch, wall time) as msgpack."""
    payload = {"state": flax.serialization.to_state_dict(state), "meta": json.dumps(meta)}
    atomic_write_bytes(path, flax.serialization.msgpack_serialize(payload))


def load_checkpoint(path: Path, target: dict[str, Any], config: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restores a checkpoint into the structure of ``target``; checks it is ``config``'s run.

    Raises:
        CheckpointError: unreadable file or a different configuration.
    """
    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        meta = json.loads(payload["meta"])
        state = flax.serialization.from_state_dict(target, payload["state"])
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e})") from None
    if meta.get("config") != config.as_dict():
        raise CheckpointError(
            f"{path}: checkpoint belongs to a different configuration {meta.get('config')}; "
            f"use another --run directory or delete it"
        )
    return state, meta


def default_run_dir(config: TrainConfig) -> Path:
    """``<cache>/runs/<arch>-s<seed>-<config digest>``."""
    return cache_root() / "runs" / f"{config.arch}-s{config.seed}-{config.digest()}"


def fit(
    config: TrainConfig,
    train_set: Dataset,
    eval_set: Dataset | None = None,
    *,
    run_dir: Path | None = None,
    transform: Transform | None = None,
    init_variables_: dict[str, Any] | None = None,
    on_event: Callable[[TrainEvent], None] | None = None,
    max_epochs: int | None = None,
    eval_indices: np.ndarray | None = None,
    init_sha256: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Trains (or resumes) a model, checkpointing to ``run_dir`` after every epoch.

    Args:
        config: the run's configuration.
        train_set: training images and labels.
        eval_set: if given, accuracy on ``eval_indices`` (default: every 5th image) is
            reported after each epoch.
        run_dir: checkpoint directory (default ``default_run_dir(config)``); an existing
            checkpoint of the same configuration is resumed.
        transform: the training-time transform named by ``config.transform``.
        init_variables_: starting ``{'params', 'batch_stats'}`` (fine-tuning).
        on_event: progress callback.
        max_epochs: stop after this epoch even if the schedule is longer (for tests and for
            splitting a run into sessions); the checkpoint allows resuming.
        eval_indices: the eval images (default every 5th).
        init_sha256: sha256 of the weights in ``init_variables_``, recorded in the checkpoint
            (``meta['init_from_sha256']``); resuming a checkpoint that started from other
            weights (e.g. a since-retrained base model) raises ``CheckpointError``.

    Returns:
        ``(state, meta)``: the final train state and the run's metadata (``epoch`` completed,
        ``wall_time_s`` summed over resumed segments, per-epoch ``history``).
    """
    emit = on_event or (lambda event: None)
    steps = len(train_set) // config.batch_size
    if steps < 1:
        raise ValueError(f"training set of {len(train_set)} images is smaller than one batch")
    trainer = Trainer(config, steps, transform)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    ckpt = run_dir / CHECKPOINT
    state = trainer.init_state(init_variables_)
    meta: dict[str, Any] = {"config": config.as_dict(), "epoch": 0, "wall_time_s": 0.0, "history": []}
    if ckpt.exists():
        state, meta = load_checkpoint(ckpt, state, config)
        started = meta.get("init_from_sha256")
        if init_sha256 is not None and started is not None and started != init_sha256:
            raise CheckpointError(
                f"{ckpt}: this run started from weights with sha256 {started[:16]}..., but "
                f"{config.init_from!r} now has {init_sha256[:16]}...; delete the run directory to start over"
            )
    if init_sha256 is not None:
        meta.setdefault("init_from_sha256", init_sha256)
    if eval_set is not None and eval_indices is None:
        eval_indices = np.arange(0, len(eval_set), 5)
    last = config.epochs if max_epochs is None else min(config.epochs, max_epochs)
    root = jax.random.key(config.seed)
    emit(TrainEvent("start", meta["epoch"], 0, steps))
    for epoch in range(meta["epoch"], last):
        t0 = time.perf_counter()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_set))
        k_epoch = jax.random.fold_in(root, epoch)
        losses = []
        for s in range(steps):
            sel = np.sort(order[s * config.batch_size : (s + 1) * config.batch_size])
            state, loss = trainer.train_step(
                state, train_set.images[sel], train_set.labels[sel], jax.random.fold_in(k_epoch, s)
            )
            losses.append(loss)
            if s % 20 == 19 or s == steps - 1:
                mean_loss = float(jnp.mean(jnp.stack(losses[-20:])))
                rate = (s + 1) * config.batch_size / (time.perf_counter() - t0)
                emit(TrainEvent("step", epoch, s + 1, steps, mean_loss, rate))
        train_loss = float(jnp.mean(jnp.stack(losses)))
        elapsed = time.perf_counter() - t0
        acc = trainer.accuracy(state, eval_set, eval_indices) if eval_set is not None else float("nan")
        meta["epoch"] = epoch + 1
        meta["wall_time_s"] += time.perf_counter() - t0
        meta["history"].append(
            {"epoch": epoch + 1, "train_loss": train_loss, "eval_accuracy": acc,
             "images_per_s": steps * config.batch_size / elapsed}
        )
        save_checkpoint(ckpt, state, meta)
        emit(TrainEvent("epoch", epoch + 1, steps, steps, train_loss, steps * config.batch_size / elapsed, acc))
    return state, meta
