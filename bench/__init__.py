"""shieldbench: scores image preprocessing defenses against adversarial attacks, on JAX.

The stable public API:

* ``load_dataset(name, split)`` — decoded, cached dataset splits (``bench.core.data``);
* ``load_model(name)`` — zoo models with a jitted ``predict(x) -> logits`` and their card;
* ``build_transform(spec)`` — registered preprocessing defenses by spec string, e.g.
  ``"jpeg(quality=75)"``; ``Transform`` and ``register_transform`` to write new ones;
  ``bpda(transform)`` for the transform with its surrogate's gradient; ``host_transform``
  and ``HostTransform`` for defenses written as NumPy/PIL/OpenCV/PyTorch code (``bench.core.host``);
* ``build_defense(spec)`` — what the leaderboard ranks: transform(s) + zoo members + vote;
  ``Defense`` and ``register_defense`` for submissions (see the README's example file);
* ``register_model(name, ...)`` — your own classifier (a Flax module + weights file, or any
  JAX ``x -> logits``) as a protocol's base or a defense member (``bench.zoo.user_models``);
* ``load_protocol(name)`` and ``Runner`` — score a defense under a protocol.

Images are float32 ``[B, H, W, C]`` in [0, 1] at every boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# the public API, loaded on first use (PEP 562): `import bench` stays fast and imports neither JAX
# nor the attacks, so `import attacks` and a submission's `from bench import ...` cannot cycle
_API = {
    "DataError": "bench.core.data", "Dataset": "bench.core.data", "load_dataset": "bench.core.data",
    "Defense": "bench.core.defense", "build_defense": "bench.core.defense", "register_defense": "bench.core.defense",
    "SpecError": "bench.core.registry",
    "Transform": "bench.core.transform", "bpda": "bench.core.transform", "build_transform": "bench.core.transform",
    "register_transform": "bench.core.transform",
    "HostError": "bench.core.host", "HostTransform": "bench.core.host", "host_transform": "bench.core.host",
    "register_model": "bench.zoo.user_models",
    "ZooError": "bench.zoo.store", "ZooModel": "bench.zoo.store", "list_models": "bench.zoo.store",
    "load_model": "bench.zoo.store",
    "load_protocol": "bench.eval.protocol", "Runner": "bench.eval.runner",
    "Result": "bench.eval.schema", "AttackEntry": "bench.eval.schema", "load_results": "bench.eval.results",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from bench.core.data import DataError, Dataset, load_dataset
    from bench.core.defense import Defense, build_defense, register_defense
    from bench.core.host import HostError, HostTransform, host_transform
    from bench.core.registry import SpecError
    from bench.core.transform import Transform, bpda, build_transform, register_transform
    from bench.eval.protocol import load_protocol
    from bench.eval.results import load_results
    from bench.eval.runner import Runner
    from bench.eval.schema import AttackEntry, Result
    from bench.zoo.store import ZooError, ZooModel, list_models, load_model
    from bench.zoo.user_models import register_model


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


from bench.core.versions import __version__, versions  # noqa: E402  (light: no JAX)


__all__ = [
    "DataError", "Dataset", "Defense", "HostError", "HostTransform", "Runner", "SpecError", "Transform", "ZooError",
    "ZooModel", "bpda", "build_defense", "build_transform", "host_transform", "list_models", "load_dataset",
    "load_model", "load_protocol", "register_defense", "register_model", "register_transform", "versions",
]
