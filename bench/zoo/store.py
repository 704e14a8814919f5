"""The model zoo: trained weights (flax msgpack) and a model card (JSON) per model.

Weights live inside the package (``bench/zoo/weights/<name>.msgpack``) beside ``<name>.json``, the
card: architecture, data source and checksum, the exact command, seed, epochs, wall time,
test accuracy on all test images, and the sha256 of the weights file. Loading recomputes the
sha256 and refuses a file that does not match its card.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp

from bench.core.io import atomic_write_bytes, atomic_write_json, sha256_bytes
from bench.zoo.cards import ZOO_DIR, ZooError, card_names, zoo_dirs  # noqa: F401  (re-exported)
from bench.zoo.models import create_model, init_variables


@dataclass(frozen=True, eq=False)
class ZooModel:
    """A loaded zoo model.

    Attributes:
        name: zoo name, e.g. ``"resnet20"``.
        module: the Flax module.
        variables: ``{'params', 'batch_stats'}``.
        card: the model card.
        predict: jitted ``predict(x) -> logits`` for float32 ``[B, H, W, C]`` in [0, 1].
    """

    name: str
    module: nn.Module | None
    variables: dict[str, Any] | None
    card: dict[str, Any]
    predict: Callable[[jax.Array], jax.Array] = field(repr=False)
    fn: Callable[[jax.Array], jax.Array] | None = field(default=None, repr=False)

    def logits_fn(self) -> Callable[[jax.Array], jax.Array]:
        """Un-jitted, differentiable ``x -> logits`` (for composing into larger jitted code)."""
        if self.fn is not None:  # a user model (bench.zoo.user_models)
            return self.fn
        return lambda x: self.module.apply(self.variables, x, train=False)


def list_models() -> list[str]:
    """Names of all models with a card in the zoo directories, and of registered user models."""
    from bench.zoo.user_models import USER_MODELS

    return sorted(set(card_names()) | set(USER_MODELS))


def read_card(name: str) -> tuple[dict[str, Any], Path]:
    """Returns ``(card, card_path)`` of a zoo model.

    Raises:
        ZooError: unknown model, or a card that is not valid JSON or lacks a required field
            (naming the file).
    """
    for d in zoo_dirs():
        path = d / f"{name}.json"
        if path.is_file():
            try:
                card = json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ZooError(f"{path}: the card of zoo model {name!r} is not valid JSON ({e})") from None
            missing = [k for k in ("arch", "input_shape", "weights_file", "weights_sha256") if not isinstance(card, dict)
                       or k not in card]
            if missing:
                raise ZooError(f"{path}: the card of zoo model {name!r} lacks {', '.join(missing)}")
            return card, path
    from bench.core.registry import unknown_name

    raise ZooError(unknown_name("zoo model", name, list_models()))


_CACHE: dict[tuple[str, str], ZooModel] = {}
_USER_CACHE: dict[str, tuple[Any, ZooModel]] = {}  # name -> (the registration it was loaded from, model)


def load_model(name: str) -> ZooModel:
    """Loads a zoo model, verifying the sha256 of its weights against its card.

    A model registered by a submission (``bench.zoo.user_models.register_model``) is loaded
    from its registration; its card says so.

    Raises:
        ZooError: unknown model, missing weights, hash mismatch or undecodable weights; for a
            user model also a failed probe check.
    """
    from bench.zoo.user_models import USER_MODELS, user_card, user_logits

    if name in USER_MODELS:
        m = USER_MODELS[name]
        cached = _USER_CACHE.get(name)
        if cached is None or cached[0] is not m:  # a re-registration (a file loaded again) replaces it
            fn, digest = user_logits(m)
            _USER_CACHE[name] = (m, ZooModel(name, None, None, user_card(m, digest), jax.jit(fn), fn))
        return _USER_CACHE[name][1]
    card, card_path = read_card(name)
    weights = card_path.with_name(card["weights_file"])
    if not weights.is_file():
        raise ZooError(f"{weights}: weights file of zoo model {name!r} is missing")
    data = weights.read_bytes()
    digest = sha256_bytes(data)
    if digest != card["weights_sha256"]:
        raise ZooError(
            f"{weights}: sha256 {digest} does not match the card's {card['weights_sha256']}; "
            "the file is corrupt or was replaced"
        )
    if (name, digest) in _CACHE:
        return _CACHE[(name, digest)]
    module = create_model(card["arch"], **card.get("arch_kwargs", {}))
    target = init_variables(module, jax.random.key(0), card["input_shape"])
    try:
        variables = flax.serialization.from_bytes(target, data)
    except Exception as e:
        raise ZooError(f"{weights}: cannot decode weights for {card['arch']} ({e})") from None
    variables = jax.tree.map(jnp.asarray, variables)
    predict = jax.jit(lambda x: module.apply(variables, x, train=False))
    model = ZooModel(name, module, variables, card, predict)
    _CACHE[(name, digest)] = model
    return model


def save_model(
    name: str,
    variables: dict[str, Any],
    card: dict[str, Any],
    zoo_dir: Path = ZOO_DIR,
) -> Path:
    """Writes ``<name>.msgpack`` and its card (adding hash, file name, date) atomically.

    The weights are written first, the card last: a card never points at missing weights.
    """
    data = flax.serialization.to_bytes({"params": variables["params"], "batch_stats": variables["batch_stats"]})
    weights = zoo_dir / f"{name}.msgpack"
    atomic_write_bytes(weights, data)
    card = {
        **card,
        "name": name,
        "weights_file": weights.name,
        "weights_sha256": sha256_bytes(data),
        "parameters": int(sum(x.size for x in jax.tree.leaves(variables["params"]))),
        "created": datetime.date.today().isoformat(),
    }
    path = zoo_dir / f"{name}.json"
    atomic_write_json(path, card)
    return path
