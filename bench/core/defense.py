"""Defenses: what the leaderboard ranks — transform(s) + member models + a vote.

A ``Defense`` (docs/design.md#defenses) is data: one or more registered transforms, one or more zoo
models ("members") and a vote. It is evaluated as a set of *views*, each a (transform,
member) pair that casts one vote:

* ``pairing="zip"``: view i is (transform i, member i); a single transform is shared by
  every member, each member seeing its own random draw (SHIELD's ensemble, and its
  "model q votes on quality q" scheme ``Mq - q``);
* ``pairing="product"``: every transform with every member (SHIELD's ``Mq x q``).

View ``i`` draws its randomness from ``fold_in(key, i)``. Votes:

* ``"mean_logits"``: the mean of the views' logits;
* ``"majority"``: the class with most votes (argmax per view); ties are broken by the mean
  logits. The returned score is ``votes + 0.5 * rank(mean logits) / K`` (rank K - 1 for the
  class with the highest mean logit), whose argmax is exactly that rule because the tie-break
  term is below 1/2 and distinct for every class.

Adaptive attacks always differentiate the *mean logits* of the views (a majority vote has no
useful gradient), with every transform's gradient replaced by the surrogate the attacker
chose (``bench.core.transform.bpda``): a defense offers the union of its transforms' surrogates
(``Defense.surrogates``), and a view whose transform lacks the chosen one uses the identity.

Every registered transform is a defense on the base model: ``build_defense("jpeg(quality=75)")``.
Named multi-model defenses are factories registered with ``@register_defense("name")`` that
return a ``Defense`` (``shield()`` in ``defenses.shield``); ``ensemble(...)`` is the generic one.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from attacks.target import AttackTarget
from bench.core.registry import Registry, SpecError, format_spec, parse_spec, unknown_name
from bench.core.transform import TRANSFORMS, Images, Transform, bpda, build_transform

BASE_MODEL = "resnet20"
RANGE_SLACK = 1e-6  # float rounding a transform may leave outside [0, 1] before it counts as out of range


class DefendedBatchError(ValueError):
    """A transform's output on a batch being scored is not a valid image batch."""
VOTES = ("mean_logits", "majority")
PAIRINGS = ("zip", "product")


DEFENSES: Registry[Callable[..., Defense]] = Registry("defense", ("defenses",))


@dataclasses.dataclass(frozen=True, repr=False)
class Defense:
    """Transform(s) + member models + vote; ``repr`` is its spec.

    Attributes:
        transform: one transform, or a tuple of transforms (see ``pairing``).
        members: zoo model names.
        vote: ``"mean_logits"`` or ``"majority"``.
        pairing: ``"zip"`` or ``"product"``.
        spec: the name used in results; derived when not given.
    """

    transform: Transform | tuple[Transform, ...]
    members: tuple[str, ...] = (BASE_MODEL,)
    vote: str = "mean_logits"
    pairing: str = "zip"
    spec: str = ""

    def __post_init__(self) -> None:
        transforms = self.transforms
        if not transforms or not all(isinstance(t, Transform) for t in transforms):
            raise ValueError(f"a defense needs Transform instances, got {self.transform!r}")
        if isinstance(self.members, str) or not self.members:
            raise ValueError(f"members must be a non-empty tuple of zoo names, got {self.members!r}")
        object.__setattr__(self, "members", tuple(self.members))
        if self.vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, got {self.vote!r}")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        if self.pairing == "zip" and len(transforms) > 1 and len(transforms) != len(self.members):
            raise ValueError(f"zip pairing needs one transform per member: {len(transforms)} transforms, "
                             f"{len(self.members)} members")
        if not self.spec:
            object.__setattr__(self, "spec", self._derived_spec())

    @property
    def transforms(self) -> tuple[Transform, ...]:
        return self.transform if isinstance(self.transform, tuple) else (self.transform,)

    @property
    def randomized(self) -> bool:
        """Whether the defended classifier's output depends on its key."""
        return any(t.randomized for t in self.transforms)

    def surrogates(self) -> tuple[str, ...]:
        """The surrogate gradients an attacker can choose: every transform's, default first."""
        out: list[str] = []
        for t in self.transforms:
            out += [s for s in t.surrogates if s not in out]
        return tuple(out)

    def views(self) -> list[tuple[Transform, str]]:
        """The (transform, member) pairs, one vote each."""
        ts = self.transforms
        if self.pairing == "product":
            return [(t, m) for t in ts for m in self.members]
        if len(ts) == 1:
            return [(ts[0], m) for m in self.members]
        return list(zip(ts, self.members))

    def on_base(self, base: str) -> Defense:
        """This defense with the protocol's base model ``base`` as its member, if it is a bare
        transform (one transform on the default member ``resnet20``, mean logits: the spec is the
        transform's), which means "the transform in front of the base model"; else itself.

        The spec is kept: ``jpeg(quality=75)`` under a protocol whose base is a ResNet-50 is
        JPEG in front of that ResNet-50, not in front of the CIFAR ResNet-20.
        """
        if base == BASE_MODEL or self.members != (BASE_MODEL,) or self.spec != repr(self.transforms[0]):
            return self
        return dataclasses.replace(self, members=(base,))

    def _derived_spec(self) -> str:
        ts = self.transforms
        if len(ts) == 1 and self.members == (BASE_MODEL,) and self.vote == "mean_logits":
            return repr(ts[0])
        kwargs: dict[str, Any] = {"transforms": tuple(repr(t) for t in ts), "members": self.members}
        if self.vote != "mean_logits":
            kwargs["vote"] = self.vote
        if self.pairing != "zip":
            kwargs["pairing"] = self.pairing
        return format_spec("ensemble", kwargs)

    def __repr__(self) -> str:
        return self.spec


def register_defense(name: str) -> Callable[[Callable[..., Defense]], Callable[..., Defense]]:
    """Registers a factory ``(**literal hyperparameters) -> Defense`` under ``name``."""
    return DEFENSES.register(name)


@register_defense("ensemble")
def ensemble(transforms: Sequence[str], members: Sequence[str], vote: str = "mean_logits",
             pairing: str = "zip") -> Defense:
    """Generic ensemble from transform specs, e.g. ``ensemble(transforms=('jpeg(quality=20)',), members=('a', 'b'))``."""
    if isinstance(transforms, str) or isinstance(members, str):
        raise ValueError("transforms and members must be tuples of strings")
    ts = tuple(build_transform(s) for s in transforms)
    return Defense(ts if len(ts) > 1 else ts[0], tuple(members), vote, pairing)


def _canonical(factory: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> str:
    """The spec of a factory call with only non-default arguments, as keywords."""
    sig = inspect.signature(factory)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise SpecError(f"bad arguments in defense spec {name}: {e}") from None
    out = {}
    for pname, value in bound.arguments.items():
        default = sig.parameters[pname].default
        if isinstance(value, list):
            value = tuple(value)
        if default is inspect.Parameter.empty or value != default:
            out[pname] = value
    return format_spec(name, out)


def build_defense(spec: str) -> Defense:
    """Builds a defense: a registered defense (``shield()``) or a transform on the base model.

    Raises:
        SpecError: malformed spec, unknown name (with close matches), or bad arguments.
    """
    name, args, kwargs = parse_spec(spec)
    if name in DEFENSES.names():
        factory = DEFENSES.get(name)
        canonical = _canonical(factory, name, args, kwargs)
        try:
            defense = factory(*args, **kwargs)
        except (TypeError, ValueError) as e:
            raise SpecError(f"invalid defense spec {spec!r}: {e}") from None
        if not isinstance(defense, Defense):
            raise SpecError(f"defense {name!r} returned {type(defense).__name__}, not a Defense")
        if name == "ensemble":
            return defense
        return dataclasses.replace(defense, spec=canonical)
    if name in TRANSFORMS.names():
        return Defense(build_transform(spec))
    raise SpecError(unknown_name("defense", name, set(DEFENSES.names()) | set(TRANSFORMS.names())))


def combine(view_logits: jax.Array, vote: str) -> jax.Array:
    """Combines ``[V, B, K]`` per-view logits into ``[B, K]`` scores by ``vote``."""
    mean = jnp.mean(view_logits, axis=0)
    if vote == "mean_logits":
        return mean
    k = view_logits.shape[-1]
    votes = jnp.sum(jax.nn.one_hot(jnp.argmax(view_logits, -1), k), axis=0)
    # rank of each class by mean logit (K - 1 for the best; equal means: the lower class ranks
    # higher, as in argmax). Ranks, not softmax values: a softmax can round a tied class's
    # tie-break term to 0 when a third class dominates the mean.
    order = jnp.argsort(-mean, axis=-1, stable=True)
    rank = k - 1 - jnp.argsort(order, axis=-1, stable=True)
    return votes + 0.5 * rank.astype(mean.dtype) / k


LogitsFn = Callable[[Images], jax.Array]


class DefendedClassifier:
    """A defense bound to loaded member models, with jitted scoring and attack functions.

    Args:
        defense: the defense.
        models: member name -> ``x -> logits`` (differentiable, un-jitted; e.g.
            ``ZooModel.logits_fn()``).
    """

    def __init__(self, defense: Defense, models: Mapping[str, LogitsFn]):
        missing = [m for m in defense.members if m not in models]
        if missing:
            raise ValueError(f"{defense.spec}: member models not loaded: {missing}")
        self.defense = defense
        views = defense.views()

        def view_images(x: Images, key: jax.Array, surrogate: str | None = None) -> list[jax.Array]:
            """Each view's transformed images (through BPDA with ``surrogate``, if one is given)."""
            out = []
            for i, (t, _) in enumerate(views):
                fn = t if surrogate is None else bpda(t, surrogate if surrogate in t.surrogates else "identity")
                out.append(fn(x, jax.random.fold_in(key, i)))
            return out

        def view_logits(x: Images, key: jax.Array, surrogate: str | None) -> jax.Array:
            return jnp.stack([models[m](y) for y, (_, m) in zip(view_images(x, key, surrogate), views)])

        def scores(x: Images, key: jax.Array) -> jax.Array:
            return combine(view_logits(x, key, None), defense.vote)

        def checked_labels(x: Images, key: jax.Array) -> tuple[jax.Array, jax.Array]:
            """Defended labels ``[B]`` and, per view, the counts of non-finite and out-of-range
            values the transform produced ``[V, 2]`` (shape and dtype are checked as it traces)."""
            logits, bad = [], []
            for y, (t, m) in zip(view_images(x, key), views):
                if getattr(y, "shape", None) != x.shape or getattr(y, "dtype", None) != x.dtype:
                    raise DefendedBatchError(
                        f"{defense.spec}: transform {t.spec} returned {getattr(y, 'shape', type(y).__name__)} "
                        f"{getattr(y, 'dtype', '')} for a batch of {x.shape} {x.dtype} (check 'shape'/'dtype')")
                finite = jnp.isfinite(y)
                bad.append(jnp.stack([jnp.sum(~finite), jnp.sum(finite & ((y < -RANGE_SLACK) | (y > 1 + RANGE_SLACK)))]))
                logits.append(models[m](y))
            return jnp.argmax(combine(jnp.stack(logits), defense.vote), axis=-1), jnp.stack(bad)

        self._scores = scores
        self._targets: dict[tuple[str, int], AttackTarget] = {}

        self.scores: Callable[[Images, jax.Array], jax.Array] = jax.jit(scores)
        """``(x [B,H,W,C], key) -> [B, K]`` scores whose argmax is the defended prediction."""

        self._checked = jax.jit(checked_labels)
        self._vmap_draws: Callable[[Images, jax.Array], tuple[jax.Array, jax.Array]] | None = None
        if all(t.key_free_work for t, _ in views):
            self._vmap_draws = jax.jit(jax.vmap(checked_labels, in_axes=(None, 0)))

        def attack_logits(x: Images, keys: jax.Array, surrogate: str = "identity") -> jax.Array:
            per_key = jax.vmap(lambda k: jnp.mean(view_logits(x, k, surrogate), axis=0))(keys)
            return jnp.mean(per_key, axis=0)

        self.attack_logits: Callable[..., jax.Array] = jax.jit(attack_logits, static_argnames="surrogate")
        """``(x, keys [K], surrogate) -> [B, K]``: mean logits through BPDA with ``surrogate``,
        averaged over the EOT keys."""

        self.preprocess: Callable[[Images, jax.Array], list[jax.Array]] = jax.jit(view_images)
        """All views' transformed images (for timing the defense's own cost)."""

    def target(self, surrogate: str = "identity", eot: int = 1) -> AttackTarget:
        """The defended pipeline as an attacker sees it (one object per choice, so attacks compile once).

        Args:
            surrogate: one of ``defense.surrogates()``; views whose transform lacks it use the identity.
            eot: EOT samples K: ``logits(x, key)`` averages K draws split from ``key``.

        Raises:
            ValueError: the defense offers no such surrogate.
        """
        if surrogate not in self.defense.surrogates():
            raise ValueError(f"{self.defense.spec} offers the surrogates {self.defense.surrogates()}, "
                             f"not {surrogate!r}")
        if (surrogate, eot) not in self._targets:
            k = eot if self.defense.randomized else 1
            self._targets[surrogate, eot] = AttackTarget(
                logits=jax.jit(lambda x, key: self.attack_logits(x, jax.random.split(key, k), surrogate)),
                predict=lambda x, key: jnp.argmax(self._scores(x, key), axis=-1),
                randomized=self.defense.randomized)
        return self._targets[surrogate, eot]

    def _raise_if_bad(self, bad: np.ndarray, batch: tuple[int, ...]) -> None:
        """Stops scoring when a transform's output was not finite or left [0, 1] (``bad`` ``[..., V, 2]``)."""
        views = self.defense.views()
        bad = np.asarray(bad).reshape(-1, len(views), 2).sum(axis=0)
        for (t, _), (non_finite, out_of_range) in zip(views, bad):
            if non_finite or out_of_range:
                check, n = ("finite", non_finite) if non_finite else ("range", out_of_range)
                raise DefendedBatchError(f"{self.defense.spec}: transform {t.spec} failed the check {check!r} on a "
                                         f"batch of {batch[0]} images: {int(n)} "
                                         f"{'non-finite values' if check == 'finite' else 'values outside [0, 1]'}")

    def predict(self, x: Images, key: jax.Array) -> jax.Array:
        """Defended labels ``[B]``; every transformed batch is checked (finite, in [0, 1]) first.

        Raises:
            DefendedBatchError: naming the defense, the transform and the failed check.
        """
        labels, bad = self._checked(x, key)
        self._raise_if_bad(bad, x.shape)
        return labels

    def predict_draws(self, x: Images, keys: jax.Array) -> jax.Array:
        """Defended labels ``[R, B]`` for R draws of the randomness: row r is ``predict(x, keys[r])``.

        When every view's transform has ``key_free_work`` (quilting), the draws run as one
        ``vmap`` over the keys, which does the key-free work once (about 3x faster for
        ``quilting()`` at R = 5, ``bench.perf.scoring_draws``); otherwise one call per draw,
        which measured faster for the DCT-based defenses.
        """
        if self._vmap_draws is not None:
            labels, bad = self._vmap_draws(x, keys)
            self._raise_if_bad(bad, x.shape)
            return labels
        return jnp.stack([self.predict(x, key) for key in keys])
