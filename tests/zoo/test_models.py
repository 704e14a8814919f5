"""Model family: shapes, parameter counts, normalisation inside the model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.zoo.models import CIFAR10_MEAN, CIFAR10_STD, create_model, init_variables


def n_params(variables) -> int:
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize(("arch", "millions"), [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85)])
def test_cifar_resnets(arch: str, millions: float) -> None:
    # shapes only (abstract evaluation, nothing compiled): the zoo and runner tests run real forwards
    model = create_model(arch)
    v = jax.eval_shape(lambda: init_variables(model, jax.random.key(0), (32, 32, 3)))
    # He et al. 2016, Table 6: 0.27M, 0.46M, 0.85M parameters (option-A shortcuts)
    assert abs(n_params(v) / 1e6 - millions) < 0.01
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, jnp.zeros((3, 32, 32, 3)))
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32


def test_resnet50v2_definition() -> None:
    model = create_model("resnet50v2")
    v = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
    assert abs(n_params(v) / 1e6 - 25.55) < 0.1  # 25.5M, as the reference ResNet-50 v2
    small = init_variables(create_model("resnet50v2", stages=(1, 1, 1, 1), num_classes=7), jax.random.key(0), (64, 64, 3))
    out = jax.jit(create_model("resnet50v2", stages=(1, 1, 1, 1), num_classes=7).apply)(small, jnp.ones((2, 64, 64, 3)))
    assert out.shape == (2, 7)


def test_normalisation_is_inside_the_model() -> None:
    model = create_model("resnet8")  # the same stem as every CIFAR ResNet
    v = init_variables(model, jax.random.key(0), (32, 32, 3))
    # the stem sees (x - mean) / std: a mean-coloured image gives exactly zero stem input
    x = jnp.broadcast_to(jnp.asarray(CIFAR10_MEAN), (1, 32, 32, 3))
    _, inter = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
    normed = inter["intermediates"]["Normalize_0"]["__call__"][0]
    assert np.allclose(normed, 0.0, atol=1e-6)
    assert len(CIFAR10_STD) == 3


def test_unknown_arch() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet21'"):
        create_model("resnet21")


def test_train_mode_updates_batch_stats() -> None:
    model = create_model("resnet20")
    v = init_variables(model, jax.random.key(0), (32, 32, 3))
    x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3))
    _, new = model.apply(v, x, train=True, mutable=["batch_stats"])
    before, after = jax.tree.leaves(v["batch_stats"]), jax.tree.leaves(new["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_every_channel_receives_a_gradient_at_init() -> None:
    # Regression: zero-initialised residual BatchNorm scales combined with option-A
    # zero-padded shortcuts left the padded channels at exactly 0 before a relu, so they
    # never learned (the first ResNet-20 reached 84% instead of ~91%).
    model = create_model("resnet8")
    v = init_variables(model, jax.random.key(0), (32, 32, 3))
    x = jax.random.uniform(jax.random.key(1), (8, 32, 32, 3))
    y = jnp.arange(8) % 10

    def loss(params):
        logits, _ = model.apply({"params": params, "batch_stats": v["batch_stats"]}, x, train=True,
                                mutable=["batch_stats"])
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), y])

    grads = jax.jit(jax.grad(loss))(v["params"])
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = jax.tree_util.keystr(path)
        if "BatchNorm" in name and "scale" in name:
            assert np.all(np.asarray(g) != 0), f"{name}: channels without gradient"
