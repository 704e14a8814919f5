"""Host-code transforms: a defense written in NumPy, PIL, OpenCV or PyTorch, scored as it is.

Most published preprocessing defenses are host code, not ``jnp``. A ``HostTransform`` runs
such code through ``jax.pure_callback``: the defended pipeline stays one jit-compiled
function (the attacks, EOT ``vmap`` and the scoring draws work unchanged) and only the
transform's own step leaves XLA for the host, one call per batch.

Two ways to write one (both give a registered, frozen-dataclass ``Transform`` whose ``repr``
is its spec, so ``build_transform(repr(t)) == t``):

* the decorator, on a function of a batch and keyword hyperparameters::

      @host_transform("pil_jpeg", dtype="uint8")
      def pil_jpeg(x: np.ndarray, quality: int = 75) -> np.ndarray:   # uint8 [B, H, W, C]
          ...

  A randomized one takes a ``numpy.random.Generator`` as its second argument
  (``@host_transform("noise", randomized=True)`` / ``def noise(x, rng, sigma=0.1)``);
* a subclass of ``HostTransform`` (frozen dataclass, registered with ``@register_transform``)
  implementing ``host(self, x, rng)``; this is the way to also offer a JAX surrogate gradient
  (declare ``surrogates`` and override ``approx``, as for any transform).

**Batches.** ``dtype="uint8"``: the host function gets ``round(255 x)`` as ``uint8 [B, H, W,
C]`` (the levels an 8-bit image file holds, as the built-in ``jpeg`` uses) and returns uint8
levels, which are divided by 255. ``dtype="float32"``: it gets and returns float32 in [0, 1].
Every returned batch is checked (shape, dtype, finite, range) and a failure raises
``HostError`` naming the host function.

**Randomness.** A randomized transform's generator is seeded from the JAX key (two uint32
words drawn from it), so the same key gives the same output and EOT's K keys give K
independent draws; a deterministic one gets ``rng=None`` and must not depend on it.

**Gradients.** Host code has no JAX gradient: the attacker's surrogate is the identity (BPDA)
unless the author declares a JAX one; gradient-free attacks (``square``) need nothing more.
The callback's far end is an ordinary Python call in this process; it is the one place where
an out-of-process (sandboxed) far end plugs in.

Under ``vmap`` (EOT over keys) the callback runs once per mapped element
(``vmap_method="sequential"``), which keeps the host function's contract a plain batch.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.transform import Images, Transform, check_images, register_transform

HOST_DTYPES = ("uint8", "float32")


class HostError(ValueError):
    """A host function returned something that is not a valid image batch."""


def host_error_in(e: BaseException) -> str | None:
    """The ``HostError`` message inside an exception a jitted call raised, or None.

    A callback's exception reaches the caller wrapped in XLA's runtime error, whose text holds
    the callback's traceback; this digs out the one line that says what the host code did.
    """
    if isinstance(e, HostError):
        return str(e)
    for line in str(e).splitlines():
        found = re.search(r"(?:^|[\s.])(?:HostError|SandboxError|RemoteError): (.+)", line)
        if found:
            return found.group(1).strip()
    return None


def host_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a host function, as error messages name it."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def check_host_output(y: Any, x: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """The host function's output as ``x``'s dtype, or ``HostError`` saying what is wrong.

    Args:
        y: what the host function returned.
        x: its input batch ``[B, H, W, C]`` (uint8 or float32).
        dtype: ``"uint8"`` or ``"float32"``.
        where: the host function and transform, for the message.
    """
    if hasattr(y, "detach"):  # a torch tensor (CPU): hand back its array
        y = y.detach().cpu().numpy()
    if not isinstance(y, np.ndarray):
        raise HostError(f"{where}: returned {type(y).__name__}, expected a numpy array of shape {x.shape}")
    if y.shape != x.shape:
        raise HostError(f"{where}: returned shape {y.shape} for an input of shape {x.shape}")
    if dtype == "uint8":
        if y.dtype != np.uint8:
            raise HostError(f"{where}: returned dtype {y.dtype}, expected uint8 (levels 0..255; this transform "
                            "was declared with dtype='uint8')")
        return y
    if not np.issubdtype(y.dtype, np.floating):
        raise HostError(f"{where}: returned dtype {y.dtype}, expected float32 in [0, 1] (declare "
                        "dtype='uint8' for a function on 8-bit levels)")
    y = y.astype(np.float32, copy=False)
    if not np.all(np.isfinite(y)):
        raise HostError(f"{where}: returned {int(np.sum(~np.isfinite(y)))} non-finite values")
    if y.size and (y.min() < 0.0 or y.max() > 1.0):
        raise HostError(f"{where}: returned values in [{y.min():.4g}, {y.max():.4g}], expected within [0, 1]")
    return y


@dataclasses.dataclass(frozen=True, repr=False)
class HostTransform(Transform):
    """Base class of transforms whose work is host code (see the module docstring).

    Class attributes:
        host_dtype: ``"uint8"`` or ``"float32"``: what ``host`` receives and returns.
    """

    host_dtype: ClassVar[str] = "float32"

    def host(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """The defense on one batch ``[B, H, W, C]`` (``host_dtype``); ``rng`` is None unless randomized."""
        raise NotImplementedError

    @property
    def host_function(self) -> Callable[..., Any]:
        """The user function behind ``host`` (for messages)."""
        return getattr(type(self), "host_fn", type(self).host)

    def _run(self, x: np.ndarray, seed: np.ndarray | None) -> np.ndarray:
        x = np.asarray(x)
        rng = np.random.default_rng([int(s) for s in np.asarray(seed).ravel()]) if seed is not None else None
        where = f"{self.spec}: host function {host_name(self.host_function)}"
        try:
            y = self.host(x.copy(), rng)
        except HostError:
            raise
        except Exception as e:
            raise HostError(f"{where} failed on a batch of shape {x.shape}: {type(e).__name__}: {e}") from e
        return check_host_output(y, x, self.host_dtype, where)

    def __call__(self, x: Images, key: jax.Array) -> Images:
        """Runs ``host`` on ``x`` ``[B, H, W, C]`` through ``jax.pure_callback`` (jit- and vmap-safe)."""
        check_images(x)
        if self.host_dtype not in HOST_DTYPES:
            raise ValueError(f"{self.spec}: host_dtype must be one of {HOST_DTYPES}, got {self.host_dtype!r}")
        if self.host_dtype == "uint8":
            xin = jnp.clip(jnp.round(x * 255.0), 0.0, 255.0).astype(jnp.uint8)
        else:
            xin = x.astype(jnp.float32)
        out = jax.ShapeDtypeStruct(xin.shape, xin.dtype)
        if self.randomized:
            seed = jax.random.bits(key, (2,), jnp.uint32)
            y = jax.pure_callback(self._run, out, xin, seed, vmap_method="sequential")
        else:
            y = jax.pure_callback(lambda a: self._run(a, None), out, xin, vmap_method="sequential")
        if self.host_dtype == "uint8":
            return y.astype(jnp.float32) / 255.0
        return y


def host_transform(name: str, *, dtype: str = "float32", randomized: bool = False, spec_fields: tuple[str, ...] = ()
                   ) -> Callable[[Callable[..., np.ndarray]], type[HostTransform]]:
    """Registers a host function ``fn(x, [rng,] **hyperparameters) -> batch`` as transform ``name``.

    The keyword parameters after ``x`` (and ``rng`` when ``randomized``) become the spec's
    fields, with their defaults: ``host_transform("pil_jpeg", dtype="uint8")`` on
    ``def pil_jpeg(x, quality=75)`` registers ``pil_jpeg(quality=75)``.

    Args:
        name: the spec name.
        dtype: ``"uint8"`` (8-bit levels) or ``"float32"`` ([0, 1]) batches.
        randomized: whether ``fn`` takes a ``numpy.random.Generator`` as its second argument.
        spec_fields: hyperparameters the spec always writes, even at their default
            (``pil_jpeg(quality=75)`` rather than ``pil_jpeg()``).

    Returns:
        A decorator returning the registered ``HostTransform`` subclass.

    Raises:
        ValueError: a bad ``dtype`` or a signature that does not fit.
    """
    if dtype not in HOST_DTYPES:
        raise ValueError(f"host_transform {name!r}: dtype must be one of {HOST_DTYPES}, got {dtype!r}")

    def wrap(fn: Callable[..., np.ndarray]) -> type[HostTransform]:
        params = list(inspect.signature(fn).parameters.values())
        lead = 2 if randomized else 1
        want = "(x, rng, **hyperparameters)" if randomized else "(x, **hyperparameters)"
        if len(params) < lead or any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY) for p in params[:lead]):
            raise ValueError(f"host_transform {name!r}: {host_name(fn)} must take {want}")
        fields = []
        for p in params[lead:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ValueError(f"host_transform {name!r}: {host_name(fn)}: *args/**kwargs cannot be spec fields")
            default = dataclasses.field() if p.default is p.empty else dataclasses.field(default=p.default)
            fields.append((p.name, Any, default))
        names = [f[0] for f in fields]
        unknown = set(spec_fields) - set(names)
        if unknown:
            raise ValueError(f"host_transform {name!r}: spec_fields {sorted(unknown)} are not parameters of "
                             f"{host_name(fn)} (its hyperparameters: {names})")

        def host(self: HostTransform, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
            kwargs = {n: getattr(self, n) for n in names}
            return fn(x, rng, **kwargs) if randomized else fn(x, **kwargs)

        cls = dataclasses.make_dataclass(
            "".join(part.title() for part in name.split("_")) or "Host", fields, bases=(HostTransform,),
            frozen=True, repr=False,
            namespace={"host": host, "host_fn": staticmethod(fn), "host_dtype": dtype, "randomized": randomized,
                       "spec_fields": tuple(spec_fields),
                       "__doc__": fn.__doc__ or f"Host function {host_name(fn)}.", "__module__": fn.__module__})
        return register_transform(name)(cls)

    return wrap
