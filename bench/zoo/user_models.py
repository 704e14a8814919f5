"""Your own model: a classifier that is not in the zoo, as a protocol's base or a defense member.

A submission file (or a file given to ``--model``) calls ``register_model`` with either

* a Flax module and a weights file (flax ``.msgpack`` from ``flax.serialization.to_bytes``
  of ``{"params": ..., ["batch_stats": ...]}``, or ``.safetensors`` with ``/``-joined keys
  such as ``params/Dense_0/kernel``, which needs the ``safetensors`` package), with the
  file's sha256; or
* any JAX function ``x -> logits`` (weights closed over), whose identity is then a
  *fingerprint*: the sha256 of its logits on a fixed probe batch.

plus the card fields the results need: ``input_shape`` (``(H, W, C)``), ``num_classes`` and
``classes`` (optional names). The model takes float32 images ``[B, H, W, C]`` in [0, 1] and
normalises **inside** (the harness never normalises). Its card records where it came from, and
``weights_sha256`` (the file's hash, or the fingerprint) keys the adversarial cache and the
results' provenance exactly like a zoo model's.

Loading verifies the weights' sha256 and checks the model on a probe batch: output shape
``[B, num_classes]``, a floating dtype, finite values, the same logits on two calls and under
jit, and a finite input gradient (the attacks need one). A failure raises ``ZooError`` naming
the model, its file and the problem.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

USER_MODELS: dict[str, UserModel] = {}
REGISTERED: list[str] = []
"""Every name in the order ``register_model`` was called (a loader can see what a file added)."""


@dataclass(frozen=True)
class UserModel:
    """A registered user model, loaded lazily by ``bench.zoo.store.load_model``.

    Attributes:
        name: the name protocols and defenses use.
        input_shape: ``(H, W, C)``.
        num_classes: logits per image.
        origin: the file that registered it (for messages and the card).
        logits: a JAX function ``x -> logits`` (or None when ``module`` is given).
        module: a Flax module (with ``weights``).
        weights: its weights file.
        weights_sha256: that file's expected sha256.
        classes: optional class names.
        description: free text for the card.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    origin: str
    logits: Callable[[jax.Array], jax.Array] | None = None
    module: Any = None
    weights: Path | None = None
    weights_sha256: str | None = None
    classes: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def register_model(name: str, *, input_shape: Sequence[int], num_classes: int,
                   logits: Callable[[jax.Array], jax.Array] | None = None, module: Any = None,
                   weights: str | Path | None = None, weights_sha256: str | None = None,
                   classes: Sequence[str] = (), description: str = "") -> None:
    """Registers a model for this process (see the module docstring).

    A relative ``weights`` path is taken from the calling file's directory.

    Raises:
        ValueError: both or neither of ``logits`` and ``module``; a module without weights or
            sha256; bad shapes, class counts or names.
    """
    from bench.zoo.cards import card_names

    origin = inspect.stack()[1].filename
    where = f"{origin}: model {name!r}"
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ ()"):
        raise ValueError(f"{origin}: a model name must be a non-empty string without '/', spaces or brackets, "
                         f"got {name!r}")
    if name in USER_MODELS and USER_MODELS[name].origin != origin:
        raise ValueError(f"{where} is already registered by {USER_MODELS[name].origin}")
    if name not in USER_MODELS and name in card_names():
        raise ValueError(f"{where}: the zoo already has a model of that name; choose another")
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"{where}: input_shape must be (H, W, C) positive integers, got {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{where}: num_classes must be an integer >= 2, got {num_classes!r}")
    if classes and len(classes) != num_classes:
        raise ValueError(f"{where}: {len(classes)} class names for num_classes={num_classes}")
    if (logits is None) == (module is None):
        raise ValueError(f"{where}: give either logits=<x -> logits function> or module=<flax module> with "
                         "weights=<file>, not both or neither")
    path = None
    if module is not None:
        if weights is None or not weights_sha256:
            raise ValueError(f"{where}: a Flax module needs weights=<.msgpack or .safetensors file> and "
                             "weights_sha256=<its sha256> (sha256sum FILE)")
        path = Path(weights)
        if not path.is_absolute():
            path = (Path(origin).resolve().parent / path).resolve()
        if path.suffix not in (".msgpack", ".safetensors"):
            raise ValueError(f"{where}: weights file {path} must be .msgpack or .safetensors")
    elif not callable(logits):
        raise ValueError(f"{where}: logits must be a function x -> logits, got {type(logits).__name__}")
    USER_MODELS[name] = UserModel(name, shape, num_classes, origin, logits, module, path, weights_sha256,
                                  tuple(classes), description)
    REGISTERED.append(name)  # a re-registration (a file loaded again) replaces what was loaded before


def probe_batch(shape: tuple[int, int, int], n: int = 4) -> jax.Array:
    """The fixed probe images ``[n, H, W, C]`` of the checks and the fingerprint."""
    return jax.random.uniform(jax.random.key(20261204), (n, *shape), jnp.float32)


def _variables(m: UserModel, data: bytes) -> Any:
    from bench.zoo.cards import ZooError

    if m.weights.suffix == ".msgpack":
        import flax.serialization

        try:
            state = flax.serialization.msgpack_restore(data)
        except Exception as e:
            raise ZooError(f"{m.weights}: cannot decode the msgpack weights of model {m.name!r}: {e}") from None
    else:
        try:
            from safetensors.numpy import load as load_safetensors
        except ImportError:
            raise ZooError(f"{m.weights}: reading .safetensors needs the safetensors package "
                           "(pip install safetensors)") from None
        try:
            flat = load_safetensors(data)
        except Exception as e:
            raise ZooError(f"{m.weights}: cannot decode the safetensors weights of model {m.name!r}: {e}") from None
        state: dict[str, Any] = {}
        for key, value in flat.items():
            node = state
            *parents, leaf = key.split("/")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    if not isinstance(state, dict) or "params" not in state:
        raise ZooError(f"{m.weights}: weights of model {m.name!r} must hold a 'params' collection "
                       f"(found {sorted(state) if isinstance(state, dict) else type(state).__name__})")
    return jax.tree.map(jnp.asarray, state)


def user_logits(m: UserModel) -> tuple[Callable[[jax.Array], jax.Array], str]:
    """The model's un-jitted ``x -> logits`` and its identity (weights sha256 or fingerprint).

    Raises:
        ZooError: missing or mismatched weights, or a model that fails the probe checks.
    """
    from bench.core.io import sha256_bytes
    from bench.zoo.cards import ZooError

    if m.module is not None:
        if not m.weights.is_file():
            raise ZooError(f"{m.weights}: weights file of model {m.name!r} (registered in {m.origin}) is missing")
        data = m.weights.read_bytes()
        digest = sha256_bytes(data)
        if digest != m.weights_sha256:
            raise ZooError(f"{m.weights}: sha256 {digest} does not match the {m.weights_sha256} that {m.origin} "
                           f"declares for model {m.name!r}")
        variables = _variables(m, data)
        module = m.module

        def fn(x: jax.Array) -> jax.Array:
            try:
                return module.apply(variables, x, train=False)
            except TypeError:  # a module without a train flag
                return module.apply(variables, x)
    else:
        fn, digest = m.logits, ""
    check_model(m, fn)
    if not digest:
        y = np.asarray(jax.jit(fn)(probe_batch(m.input_shape)), np.float32)
        digest = "fingerprint:" + sha256_bytes(y.tobytes())
    return fn, digest


def check_model(m: UserModel, fn: Callable[[jax.Array], jax.Array]) -> None:
    """Output shape and dtype, finite, deterministic, jit-equal and differentiable on the probe batch.

    Raises:
        ZooError: naming the model, its file and the failed check.
    """
    from bench.zoo.cards import ZooError

    where = f"model {m.name!r} (registered in {m.origin})"
    x = probe_batch(m.input_shape)
    try:
        y = fn(x)
    except Exception as e:
        raise ZooError(f"{where}: fails on a probe batch {tuple(x.shape)}: {type(e).__name__}: {e}") from None
    want = (x.shape[0], m.num_classes)
    if not hasattr(y, "shape") or tuple(y.shape) != want:
        raise ZooError(f"{where}: logits of shape {getattr(y, 'shape', type(y).__name__)} for input "
                       f"{tuple(x.shape)}, expected {want}")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise ZooError(f"{where}: logits of dtype {y.dtype}, expected a floating dtype")
    y = np.asarray(y)
    if not np.all(np.isfinite(y)):
        raise ZooError(f"{where}: non-finite logits on the probe batch")
    if not np.array_equal(np.asarray(fn(x)), y):
        raise ZooError(f"{where}: two calls on the same images gave different logits (a model must be "
                       "deterministic; dropout or batch statistics in inference mode?)")
    yj = np.asarray(jax.jit(fn)(x))
    if not np.allclose(yj, y, rtol=1e-4, atol=1e-4):
        raise ZooError(f"{where}: jitted logits differ from eager ones by up to {np.max(np.abs(yj - y)):.3g}")
    try:
        g = np.asarray(jax.grad(lambda z: jnp.sum(fn(z)[:, 0]))(x))
    except Exception as e:
        raise ZooError(f"{where}: no input gradient (the attacks need one): {type(e).__name__}: {e}") from None
    if not np.all(np.isfinite(g)):
        raise ZooError(f"{where}: the input gradient is not finite")


def user_card(m: UserModel, digest: str) -> dict[str, Any]:
    """The card a loaded user model carries (the fields the runner and results read)."""
    card: dict[str, Any] = {"name": m.name, "arch": "user", "input_shape": list(m.input_shape),
                            "num_classes": m.num_classes, "normalization": "inside the model",
                            "registered_in": m.origin, "weights_sha256": digest}
    if m.weights is not None:
        card["weights_file"] = str(m.weights)
    if m.classes:
        card["classes"] = list(m.classes)
    if m.description:
        card["description"] = m.description
    return card
