"""The transform protocol: a preprocessing defense as a pure, jit/vmap-safe function.

A ``Transform`` is a frozen dataclass whose fields are its hyperparameters, and whose
``__call__(x, key)`` maps float32 images ``[B, H, W, C]`` in [0, 1] to images of the same
shape, dtype and range using only ``jnp``/``lax``. ``randomized`` says whether the output depends on ``key`` (then the
adaptive attack uses EOT and scores use several draws).

**Surrogates belong to the attacker.** A transform declares the gradients it offers in
``surrogates`` (a class attribute; the first is the default) and computes each in
``approx(x, key, surrogate)``; BPDA (Athalye, Carlini & Wagner, ICML 2018) differentiates the
chosen surrogate instead of the transform. Every transform offers ``"identity"`` (the classic
BPDA straight-through gradient). ``"own"`` means the transform's own gradient (``jax.grad``
through ``__call__``), for transforms that are differentiable almost everywhere (median,
TV denoising); a transform that offers it must keep that gradient finite. A protocol's
``worst_case`` adaptive attack runs through every declared surrogate and keeps the worst case
per image (``bench.eval.adaptive``; a plain adaptive attack uses the identity surrogate), so a
surrogate is never a defense parameter and never a board row.

``bpda(t, surrogate)`` is the transform with the surrogate's gradient: the forward pass is
exactly ``t(x, key)``, the backward pass is the VJP of ``t.approx(., key, surrogate)`` at ``x``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp

from bench.core.registry import Registry, spec_of

Images = jax.Array  # float32 [B, H, W, C] in [0, 1]


TRANSFORMS: Registry[Transform] = Registry("transform", ("defenses",), spec_repr=True)
register_transform = TRANSFORMS.register


@dataclasses.dataclass(frozen=True, repr=False)
class Transform:
    """Base class of preprocessing defenses (subclass as a frozen dataclass and register).

    Class attributes:
        randomized: whether ``__call__`` uses its key.
        key_free_work: whether most of the work does not depend on the key (quilting's
            neighbour search). Then several scoring draws are run as one ``vmap`` over their
            keys, which does that work once; otherwise one call per draw, which measured
            faster when every step depends on the key. Speed only: the outputs are the same.
        surrogates: the BPDA surrogate gradients it offers an attacker, default first;
            ``"identity"`` is always among them.
        spec_name: set by ``@register_transform(name)``.
    """

    surrogates: ClassVar[tuple[str, ...]] = ("identity",)
    randomized: ClassVar[bool] = False
    key_free_work: ClassVar[bool] = False
    spec_name: ClassVar[str] = "transform"

    def __call__(self, x: Images, key: jax.Array) -> Images:
        """Applies the defense to ``x`` ``[B, H, W, C]``; pure, jit- and vmap-safe."""
        raise NotImplementedError

    def approx(self, x: Images, key: jax.Array, surrogate: str = "identity") -> Images:
        """The differentiable surrogate ``surrogate`` (one of ``surrogates``) that BPDA differentiates.

        The base class computes ``"identity"`` (returns ``x``) and ``"own"`` (the transform
        itself); a subclass that declares other surrogates overrides this and defers to
        ``super().approx`` for these two.

        Raises:
            ValueError: ``surrogate`` is not one this transform declares.
        """
        check_surrogate(self, surrogate)
        if surrogate == "own":
            return self(x, key)
        if surrogate == "identity":
            return x
        raise NotImplementedError(f"{self.spec} declares surrogate {surrogate!r} but approx() does not compute it")

    def __repr__(self) -> str:
        return spec_of(self)

    @property
    def spec(self) -> str:
        """The canonical spec string, e.g. ``jpeg(quality=75)``."""
        return repr(self)


@register_transform("identity")
@dataclasses.dataclass(frozen=True, repr=False)
class Identity(Transform):
    """No defense: returns its input."""

    def __call__(self, x: Images, key: jax.Array) -> Images:
        del key
        return x


def check_surrogate(transform: Transform, surrogate: str) -> None:
    """Raises ValueError naming the transform when it does not offer ``surrogate``."""
    if surrogate not in transform.surrogates:
        raise ValueError(f"{transform.spec} offers the surrogates {transform.surrogates}, not {surrogate!r}")


def bpda(transform: Transform, surrogate: str = "identity") -> Callable[[Images, jax.Array], Images]:
    """``x, key -> transform(x, key)`` whose gradient is that of ``transform.approx(., key, surrogate)``.

    With ``surrogate="own"`` this is the transform itself (its own gradient).

    Raises:
        ValueError: the transform does not offer ``surrogate``.

    Returns:
        A function with the transform's forward values and the surrogate's VJP.
    """
    check_surrogate(transform, surrogate)
    if surrogate == "own":
        return transform.__call__

    @jax.custom_vjp
    def f(x: Images, key: jax.Array) -> Images:
        return transform(x, key)

    def fwd(x, key):
        return transform(x, key), (x, key)

    def bwd(res, g):
        x, key = res
        _, vjp = jax.vjp(lambda z: transform.approx(z, key, surrogate), x)
        (gx,) = vjp(g)
        return gx, None

    f.defvjp(fwd, bwd)
    return f


def build_transform(spec: str) -> Transform:
    """Builds a registered transform from its spec, e.g. ``build_transform("jpeg(quality=75)")``.

    Raises:
        SpecError: malformed spec, unknown name (with close matches), or bad arguments.
    """
    return TRANSFORMS.build(spec)


def check_images(x: jax.Array, name: str = "x") -> None:
    """Static check (shape and dtype only; safe under jit) that ``x`` is ``[B, H, W, C]`` float."""
    if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be float images [B, H, W, C], got shape {x.shape} dtype {x.dtype}")
