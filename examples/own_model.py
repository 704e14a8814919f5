"""A submission that brings its own model: a Flax module + weights file, used as a defense member.

Score it with ``shieldbench submit examples/own_model.py --trust`` (a model runs in the scoring
process, so a file that brings one is scored in-process, as your own code). ``register_model`` makes the model
available under a name, like a zoo model: as a member of a defense (below), or as the ``base`` of
a protocol file (``base = "my_resnet20"``) given with ``--model examples/own_model.py``.

To keep the example self-contained, the "own" model is the zoo's ResNet-20 definition with the
zoo's weights file, so ``my_jpeg_member()`` must score exactly like the built-in
``jpeg(quality=75)`` (a cross-check). With your model, pass your Flax module, your
``.msgpack`` (``flax.serialization.to_bytes({"params": ..., "batch_stats": ...})``) or
``.safetensors`` file and its ``sha256sum``; or pass any JAX function as ``logits=`` instead. The
model maps float32 images ``[B, 32, 32, 3]`` in [0, 1] to logits and normalises inside.
"""

from bench import Defense, build_transform, register_defense, register_model
from bench.core.data import CIFAR10_CLASSES
from bench.zoo.models import create_model

register_model(
    "my_resnet20",
    module=create_model("resnet20"),  # your own flax.linen.Module
    weights="../bench/zoo/resnet20.msgpack",  # relative to this file
    weights_sha256="b06c1e94a31fec46af36ca9e9c07a477527119b10a6274b55c86bfafa32aab91",
    input_shape=(32, 32, 3),
    num_classes=10,
    classes=CIFAR10_CLASSES,
    description="the zoo's resnet20, registered as a user model (examples/own_model.py)",
)


@register_defense("my_jpeg_member")
def my_jpeg_member(quality: int = 75) -> Defense:
    """``jpeg(quality)`` in front of the registered model."""
    return Defense(build_transform(f"jpeg(quality={quality})"), members=("my_resnet20",))
