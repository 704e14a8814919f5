"""shieldbench: scores image preprocessing defenses against adversarial attacks, on JAX.

The stable public API:

* ``load_dataset(name, split)`` — decoded, cached dataset splits (``bench.data``);
* ``load_model(name)`` — zoo models with a jitted ``predict(x) -> logits`` and their card;
* ``build_transform(spec)`` — registered preprocessing defenses by spec string, e.g.
  ``"jpeg(quality=75)"``; ``Transform`` and ``register_transform`` to write new ones;
  ``bpda(transform)`` for the transform with its surrogate's gradient; ``host_transform``
  and ``HostTransform`` for defenses written as NumPy/PIL/OpenCV/PyTorch code (``bench.host``);
* ``build_defense(spec)`` — what the leaderboard ranks: transform(s) + zoo members + vote;
  ``Defense`` and ``register_defense`` for submissions (see the README's example file);
* ``register_model(name, ...)`` — your own classifier (a Flax module + weights file, or any
  JAX ``x -> logits``) as a protocol's base or a defense member (``bench.user_models``);
* ``load_protocol(name)`` and ``Runner`` — score a defense under a protocol.

Images are float32 ``[B, H, W, C]`` in [0, 1] at every boundary.
"""

from __future__ import annotations

from bench.data import DataError, Dataset, load_dataset
from bench.defense import Defense, build_defense, register_defense
from bench.protocol import load_protocol
from bench.registry import SpecError
from bench.transform import Transform, bpda, build_transform, register_transform
from bench.host import HostError, HostTransform, host_transform
from bench.user_models import register_model
from bench.zoo import ZooError, ZooModel, list_models, load_model
from bench.runner import Runner  # noqa: E402  (imports attacks, which imports bench)

__version__ = "0.1.0"


def versions() -> dict[str, str]:
    """Versions of shieldbench and the packages that determine its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"shieldbench": __version__}
    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "pillow", "foolbox", "eagerpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


__all__ = [
    "DataError", "Dataset", "Defense", "HostError", "HostTransform", "Runner", "SpecError", "Transform", "ZooError",
    "ZooModel", "bpda", "build_defense", "build_transform", "host_transform", "list_models", "load_dataset",
    "load_model", "load_protocol", "register_defense", "register_model", "register_transform", "versions",
]
