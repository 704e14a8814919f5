"""Randomly initialised ResNet-50 v2s for the ``imagefolder-224`` template: time a run before you have weights.

Registers the zoo's ResNet-50 v2 definition (``bench.zoo.models.ResNetV2``; He, Zhang, Ren, Sun,
"Identity Mappings in Deep Residual Networks", ECCV 2016) with random weights, 1,000 classes and
224x224 inputs, under two names: ``resnet50v2-random`` (a base) and ``resnet50v2-random-source``
(a transfer source: other weights). Their accuracy is chance; their cost is a trained ResNet-50's.
Each is a JAX function identified by its logits fingerprint (``bench.zoo.user_models``)::

    shieldbench run --protocol my-imagenet.toml --data /path/to/folder --model examples/resnet50v2_random.py

with ``base = "resnet50v2-random"`` and ``source = "resnet50v2-random-source"`` in the protocol.
With trained weights, register the same definition with its weights file instead::

    from bench import register_model
    from bench.zoo.models import ResNetV2

    register_model("resnet50v2-imagenet", module=ResNetV2(), weights="resnet50v2-imagenet.msgpack",
                   weights_sha256="<sha256sum of the file>", input_shape=(224, 224, 3), num_classes=1000)

(flax ``.msgpack`` of ``{"params", "batch_stats"}`` for ``ResNetV2()``, or ``.safetensors``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from bench import register_model
from bench.zoo.models import ResNetV2, init_variables

SHAPE = (224, 224, 3)


def random_resnet50v2(seed: int, num_classes: int = 1000) -> Callable[[jax.Array], jax.Array]:
    """``x [B, 224, 224, 3] in [0, 1] -> logits [B, num_classes]`` of a ResNet-50 v2 initialised with ``seed``."""
    module = ResNetV2(num_classes=num_classes)
    variables: dict[str, Any] = init_variables(module, jax.random.key(seed), SHAPE)

    def logits(x: jax.Array) -> jax.Array:
        return module.apply(variables, x, train=False)

    return logits


for _name, _seed in (("resnet50v2-random", 0), ("resnet50v2-random-source", 1)):
    register_model(_name, logits=random_resnet50v2(_seed), input_shape=SHAPE, num_classes=1000,
                   description=f"ResNet-50 v2 (bench.zoo.models.ResNetV2), random initialisation, seed {_seed}: "
                               "for timing, not for accuracy")
