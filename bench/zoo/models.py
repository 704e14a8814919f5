"""The shieldbench model family: Flax ResNets for CIFAR and ImageNet.

Implemented:

* **CIFAR ResNet-20/32/56** (and ResNet-8, n = 1, a tiny model for tests) — He, Zhang, Ren, Sun, "Deep Residual Learning for Image
  Recognition", CVPR 2016, §4.2: a 3x3 stem with 16 filters, three stages of ``n`` basic
  blocks with 16/32/64 filters (depth = 6n + 2), global average pooling, a linear head.
  Shortcuts are the paper's *option A* (identity; on down-sampling, stride-2 subsampling
  plus zero-padding of the new channels), so ResNet-20 has the paper's 0.27M parameters.
  Departure: convolution kernels use He (fan-out) normal initialisation. Every BatchNorm
  scale starts at one. (Goyal et al.'s zero-initialised last scale must not be combined with
  option A: the zero-padded channels then carry exact zeros into ``relu``, whose derivative
  at 0 is 0 in JAX, so those channels never receive a gradient and the network trains as if
  every stage had 16 channels. A first ResNet-20 trained that way reached only 84.4%.)
* **ResNet-50 v2** — He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016:
  the pre-activation bottleneck network for 224x224 ImageNet inputs with projection
  shortcuts. Provided as a definition only (no weights ship with shieldbench).

Every model takes float32 images ``[B, H, W, C]`` in ``[0, 1]`` and normalises them itself
(per-channel mean and standard deviation of its training set), so nothing outside the model
ever needs to know the normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on ``[B, H, W, C]`` images in [0, 1]."""

    mean: Sequence[float]
    std: Sequence[float]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mean = jnp.asarray(self.mean, jnp.float32)
        std = jnp.asarray(self.std, jnp.float32)
        return (x - mean) / std


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an option-A (parameter-free) shortcut."""

    filters: int
    strides: int
    norm: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(nn.Conv, use_bias=False, kernel_init=_conv_init)
        y = conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(x)
        y = nn.relu(self.norm()(y))
        y = conv(self.filters, (3, 3), padding=1)(y)
        y = self.norm()(y)
        shortcut = x
        if self.strides != 1 or x.shape[-1] != self.filters:
            shortcut = x[:, :: self.strides, :: self.strides, :]
            extra = self.filters - x.shape[-1]
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        return nn.relu(y + shortcut)


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth ``6 * blocks + 2`` (He et al. 2016, §4.2).

    Attributes:
        blocks: residual blocks per stage (3 -> ResNet-20, 5 -> ResNet-32, 9 -> ResNet-56).
        num_classes: size of the logit vector.
        mean, std: per-channel input normalisation applied inside the model.
    """

    blocks: int = 3
    num_classes: int = 10
    mean: Sequence[float] = CIFAR10_MEAN
    std: Sequence[float] = CIFAR10_STD

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps images ``[B, H, W, 3]`` in [0, 1] to logits ``[B, num_classes]``."""
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        x = Normalize(self.mean, self.std)(x)
        x = nn.Conv(16, (3, 3), padding=1, use_bias=False, kernel_init=_conv_init)(x)
        x = nn.relu(norm()(x))
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(self.blocks):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(filters, strides, norm)(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


class BottleneckV2(nn.Module):
    """Pre-activation bottleneck block (He et al. 2016b) with a projection shortcut."""

    filters: int
    strides: int
    norm: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = partial(nn.Conv, use_bias=False, kernel_init=_conv_init)
        pre = nn.relu(self.norm()(x))
        shortcut = x
        if self.strides != 1 or x.shape[-1] != 4 * self.filters:
            shortcut = conv(4 * self.filters, (1, 1), (self.strides, self.strides))(pre)
        y = conv(self.filters, (1, 1))(pre)
        y = nn.relu(self.norm()(y))
        y = conv(self.filters, (3, 3), (self.strides, self.strides), padding=1)(y)
        y = nn.relu(self.norm()(y))
        y = conv(4 * self.filters, (1, 1))(y)
        return y + shortcut


class ResNetV2(nn.Module):
    """ImageNet pre-activation ResNet (v2); ``stages=(3, 4, 6, 3)`` is ResNet-50 v2."""

    stages: Sequence[int] = (3, 4, 6, 3)
    num_classes: int = 1000
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Maps images ``[B, 224, 224, 3]`` in [0, 1] to logits ``[B, num_classes]``."""
        norm = partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        x = Normalize(self.mean, self.std)(x)
        x = nn.Conv(64, (7, 7), (2, 2), padding=3, use_bias=False, kernel_init=_conv_init)(x)
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for stage, count in enumerate(self.stages):
            for block in range(count):
                strides = 2 if stage > 0 and block == 0 else 1
                x = BottleneckV2(64 * 2**stage, strides, norm)(x)
        x = nn.relu(norm()(x))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet8": partial(CifarResNet, blocks=1),  # tiny: for tests and quick experiments
    "resnet20": partial(CifarResNet, blocks=3),
    "resnet32": partial(CifarResNet, blocks=5),
    "resnet56": partial(CifarResNet, blocks=9),
    "resnet50v2": ResNetV2,
}


def create_model(arch: str, **kwargs: Any) -> nn.Module:
    """Builds an architecture by name (see ``ARCHITECTURES``).

    Raises:
        ValueError: for an unknown architecture name.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](**kwargs)


def init_variables(model: nn.Module, key: jax.Array, image_shape: Sequence[int]) -> dict[str, Any]:
    """Initialises ``{'params', 'batch_stats'}`` for images of shape ``[H, W, C]``."""
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    return dict(jax.jit(partial(model.init, train=False))(key, dummy))
