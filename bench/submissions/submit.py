"""Submissions: load a defense from a Python file and check it honours the transform contract.

A submission is a Python file that imports ``bench`` (and jax, or NumPy/PIL/PyTorch for host code,
``bench.core.host``) and registers one or more
transforms (``@register_transform``) or defenses (``@register_defense``), each buildable with
default arguments (``name()``). ``load_submission`` runs the file as a fresh module and
returns the specs it registered; ``validate_defense`` checks every transform of a defense
(docs/design.md#defenses) on a small batch of synthetic images and raises ``ContractError`` naming the
first failed check:

``spec`` (its spec rebuilds an equal transform, so the board row's command does), ``runs``,
``shape``, ``dtype`` (float32), ``finite``, ``range`` ([0, 1]),
``deterministic`` (same key -> same output), ``randomized`` (a transform that does not
declare ``randomized = True`` must ignore its key: otherwise it would be scored with one
draw and attacked without EOT), ``jit`` (jit-able, and equal to the eager output),
``approx`` (the transform declares its ``surrogates`` with ``"identity"`` among them, its
``approx`` accepts ``(x, key, surrogate)``, and **every** declared surrogate keeps the shape
and dtype, is finite and has a finite, non-zero BPDA gradient: a surrogate built on
``jnp.round`` passes no gradient and would make the adaptive attack, which tries every
surrogate, a no-op through it). Failures name the transform and the surrogate.
``fresh`` (``check_fresh_load``): executing the file a second time gives transforms with the same
outputs for the same input and key, so a transform seeded from the clock or from global state
at import, which every other check passes within one load, cannot give other numbers on each
``submit``.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bench.core.defense import DEFENSES, Defense, build_defense
from bench.core.host import HostTransform, host_error_in, host_name
from bench.core.transform import TRANSFORMS, Transform, bpda, build_transform

if TYPE_CHECKING:
    from bench.submissions.sandbox import Sandbox


CHECKS = ("spec", "runs", "shape", "dtype", "finite", "range", "deterministic", "randomized", "jit", "approx",
          "fresh")


class SubmissionError(ValueError):
    """A submission file that cannot be loaded or registers nothing."""


class ContractError(ValueError):
    """A transform that breaks the contract; ``check`` names the failed check."""

    def __init__(self, spec: str, check: str, detail: str):
        super().__init__(f"{spec}: contract check {check!r} failed: {detail}")
        self.check = check

    @classmethod
    def from_message(cls, message: str, check: str) -> ContractError:
        """The error as the sandboxed worker worded it."""
        e = cls.__new__(cls)
        ValueError.__init__(e, message)
        e.check = check
        return e


class Registered(NamedTuple):
    """What executing a submission file registered: transform, defense and model names."""

    transforms: list[str]
    defenses: list[str]
    models: list[str]

    @property
    def specs(self) -> list[str]:
        """The defenses it can be scored as: ``name()`` of every transform and defense."""
        return [f"{n}()" for n in sorted({*self.transforms, *self.defenses})]


NOTHING_REGISTERED = ("registers no transform or defense (decorate a Transform subclass with "
                      "@register_transform('name'))")


def check_submission_path(path: str | Path) -> Path:
    """``path`` as a ``Path``, or ``SubmissionError`` if it is missing or not a ``.py`` file."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    if path.suffix != ".py":
        raise SubmissionError(f"{path}: a submission is a Python file (.py)")
    return path


def execute_submission(path: str | Path) -> Registered:
    """Executes a submission file as a fresh module; returns what it registered (models with
    ``bench.zoo.user_models.register_model`` included).

    Raises:
        SubmissionError: missing file, not ``.py``, or an exception while importing (with the
            file's line).
    """
    from bench.zoo import user_models

    path = check_submission_path(path)
    TRANSFORMS.names(), DEFENSES.names()  # the built-ins first, so that they are not counted as the file's
    before = len(TRANSFORMS.registered), len(DEFENSES.registered), len(user_models.REGISTERED)
    name = f"shieldbench_submission_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path.resolve()]
        where = f"{path}:{frames[-1].lineno}" if frames else str(path)
        raise SubmissionError(f"{where}: {type(e).__name__}: {e}") from None
    return Registered(sorted(set(TRANSFORMS.registered[before[0]:])), sorted(set(DEFENSES.registered[before[1]:])),
                      sorted(set(user_models.REGISTERED[before[2]:])))


def load_submission(path: str | Path) -> list[str]:
    """Executes a submission file and returns the specs (``name()``) it registered.

    The file may also register models (``register_model``), e.g. the members of its defense.

    Raises:
        SubmissionError: missing file, not ``.py``, an exception while importing (with the
            file's line), or no new transform or defense registered.
    """
    specs = execute_submission(path).specs
    if not specs:
        raise SubmissionError(f"{path}: {NOTHING_REGISTERED}")
    return specs


def load_model_file(path: str | Path) -> list[str]:
    """Executes a file given to ``--model`` and returns the model names it registered.

    Raises:
        SubmissionError: as ``load_submission``, or no model registered.
    """
    models = execute_submission(path).models
    if not models:
        raise SubmissionError(f"{path}: registers no model (call bench.register_model(name, ...); see the "
                              "README's 'Your own model')")
    return models


def _sample(shape: tuple[int, ...]) -> jax.Array:
    """Smooth-ish synthetic images in [0, 1] including exact 0 and 1 pixels."""
    x = jax.random.uniform(jax.random.key(1234), shape)
    return x.at[:, 0, 0, :].set(0.0).at[:, -1, -1, :].set(1.0)


def describe(t: Transform) -> str:
    """The transform's spec, and for host code the function behind it (for messages)."""
    if isinstance(t, HostTransform):
        return f"{t.spec} (host function {host_name(t.host_function)})"
    return t.spec


def check_spec(t: Transform) -> None:
    """The ``spec`` check: ``t``'s spec rebuilds ``t`` (so its board row's command does too)."""
    try:
        rebuilt = build_transform(t.spec)
    except Exception as e:
        raise ContractError(describe(t), "spec", f"its spec {t.spec!r} does not rebuild it: {e}") from None
    if rebuilt != t:
        raise ContractError(describe(t), "spec", f"its spec {t.spec!r} rebuilds {rebuilt!r}, which is not equal to "
                                                 "it (are all its hyperparameters dataclass fields?)")


def validate_transform(t: Transform, shape: tuple[int, int, int, int] = (4, 32, 32, 3)) -> None:
    """Runs every contract check on ``t``; raises ``ContractError`` at the first failure."""
    check_spec(t)
    spec = describe(t)
    x = _sample(shape)
    key = jax.random.key(7)
    try:
        y = t(x, key)
    except Exception as e:
        raise ContractError(spec, "runs", host_error_in(e) or f"{type(e).__name__}: {e}") from None
    if not hasattr(y, "shape") or tuple(y.shape) != shape:
        raise ContractError(spec, "shape", f"input {shape}, output {getattr(y, 'shape', type(y).__name__)}")
    if y.dtype != jnp.float32:
        raise ContractError(spec, "dtype", f"output dtype {y.dtype}, expected float32")
    y = np.asarray(y)
    if not np.all(np.isfinite(y)):
        raise ContractError(spec, "finite", f"{int(np.sum(~np.isfinite(y)))} non-finite output values")
    if y.min() < 0.0 or y.max() > 1.0:
        raise ContractError(spec, "range", f"output spans [{y.min():.4g}, {y.max():.4g}], expected within [0, 1]")
    if not np.array_equal(np.asarray(t(x, key)), y):
        raise ContractError(spec, "deterministic", "two calls with the same key gave different outputs")
    if not t.randomized and not np.array_equal(np.asarray(t(x, jax.random.key(8))), y):
        raise ContractError(spec, "randomized", "the output depends on the key but the class does not set "
                                                "`randomized = True`")
    try:
        yj = np.asarray(jax.jit(t)(x, key))
    except Exception as e:
        raise ContractError(spec, "jit", host_error_in(e) or f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    if not np.allclose(yj, y, atol=1e-5):
        raise ContractError(spec, "jit", f"jitted output differs from eager by up to {np.max(np.abs(yj - y)):.3g}")
    check_surrogates(t, x, key)


def check_surrogates(t: Transform, x: jax.Array, key: jax.Array) -> None:
    """The ``approx`` check: the declared surrogates, ``approx``'s signature, and for every
    declared surrogate its output (shape, dtype, finite) and BPDA gradient (finite, non-zero).

    Raises:
        ContractError: check ``approx``, naming the transform and the surrogate.
    """
    spec = describe(t)
    declared = t.surrogates
    if (not isinstance(declared, tuple) or not declared or not all(isinstance(s, str) for s in declared)
            or len(set(declared)) != len(declared)):
        raise ContractError(spec, "approx", f"surrogates must be a tuple of distinct names, got {declared!r}")
    if "identity" not in declared:
        raise ContractError(spec, "approx", f"surrogates {declared} must include 'identity' (BPDA's "
                                            "straight-through gradient, which every transform offers)")
    try:
        signature = inspect.signature(t.approx)
    except (TypeError, ValueError):  # not introspectable: let the calls below decide
        signature = None
    if signature is not None:
        try:
            signature.bind(x, key, declared[0])
        except TypeError:
            raise ContractError(spec, "approx", f"approx must accept (x, key, surrogate), it takes {signature}; "
                                                "declare the surrogates in `surrogates` and compute each in "
                                                "approx(x, key, surrogate)") from None
    w = jax.random.normal(jax.random.key(4321), x.shape, x.dtype)  # a generic loss: sum(w * output)
    for s in declared:
        where = f"surrogate {s!r}"
        try:
            a = t.approx(x, key, s)
        except Exception as e:
            raise ContractError(spec, "approx", f"{where}: approx failed: {type(e).__name__}: {e}") from None
        if not hasattr(a, "shape") or tuple(a.shape) != tuple(x.shape) or a.dtype != x.dtype:
            got = f"{a.shape} {a.dtype}" if hasattr(a, "shape") else type(a).__name__
            raise ContractError(spec, "approx", f"{where}: approx returns {got}, expected {x.shape} {x.dtype}")
        if not np.all(np.isfinite(np.asarray(a))):
            raise ContractError(spec, "approx", f"{where}: approx has non-finite values")
        try:
            g = jax.grad(lambda z: jnp.sum(w * bpda(t, s)(z, key)))(x)
        except Exception as e:
            raise ContractError(spec, "approx", f"{where}: BPDA gradient failed: {type(e).__name__}: {e}") from None
        g = np.asarray(g)
        if g.shape != x.shape or not np.all(np.isfinite(g)):
            raise ContractError(spec, "approx", f"{where}: the gradient is not finite or has the wrong shape")
        if not np.any(g):
            raise ContractError(spec, "approx", f"{where}: the gradient is zero everywhere (e.g. it uses jnp.round); "
                                                "the adaptive attack could not move")


def validate_defense(defense: Defense) -> None:
    """Checks every transform of ``defense`` and that its member models load from the zoo.

    A sandboxed transform is checked twice: in its sandbox, on its own code (the precise
    message), then here through the sandbox's boundary (what the harness will score).
    """
    from bench.submissions.sandbox import RemoteError, RemoteTransform
    from bench.zoo.store import load_model

    for t in defense.transforms:
        if isinstance(t, RemoteTransform):
            try:
                t.box.request({"op": "validate", "spec": t.spec}, what=f"the contract checks of {t.spec}")
            except RemoteError as e:
                if e.kind == "ContractError":
                    raise ContractError.from_message(e.remote, e.check or "runs") from None
                raise ContractError(describe(t), "runs", str(e)) from None
        validate_transform(t)
    for m in defense.members:
        load_model(m)


def check_fresh_load(path: str | Path, defense: Defense) -> None:
    """The ``fresh`` check: executing ``path`` again rebuilds ``defense`` with the same outputs.

    Raises:
        ContractError: check ``fresh``, naming the transform.
    """
    x, key = _sample((4, 32, 32, 3)), jax.random.key(7)
    before = [np.asarray(t(x, key)) for t in defense.transforms]
    execute_submission(path)
    again = build_defense(defense.spec)
    for t, first in zip(again.transforms, before):
        if not np.array_equal(np.asarray(t(x, key)), first):
            raise ContractError(describe(t), "fresh", "executing the file again gave other outputs for the same "
                                                      "input and key (is it seeded from the clock, or from global "
                                                      "state, when the file is loaded?)")


def submission_sha256(path: str | Path) -> str:
    """sha256 of a submission file (recorded with its results)."""
    from bench.core.io import sha256_bytes

    return sha256_bytes(Path(path).read_bytes())


def sandboxed_submission(path: str | Path, timeout: float = 600.0) -> tuple[list[str], Sandbox]:
    """Executes a submission file in a sandbox (``bench.submissions.sandbox``) and registers stand-ins for
    what it registered; returns their specs (``name()``) and the sandbox.

    Raises:
        SubmissionError: missing file, not ``.py``, an exception while importing, nothing
            registered, models registered (they need ``--trust``), or no filesystem confinement
            on this kernel.
    """
    from bench.submissions.sandbox import RemoteError, Sandbox, register_remote

    path = check_submission_path(path)
    box = Sandbox(path, timeout=timeout)
    try:
        if not box.confinement or not box.confinement["landlock_abi"]:
            raise SubmissionError(f"{path}: this kernel has no Landlock, so the sandbox could not stop the file "
                                  "from writing to your files; score it with --trust only if you trust its code")
        try:
            loaded = box.load()
        except RemoteError as e:
            raise SubmissionError(e.remote if e.kind == "SubmissionError" else str(e)) from None
        if loaded["models"]:
            raise SubmissionError(f"{path}: registers model(s) {loaded['models']}; a model runs in the harness, "
                                  "so a file that brings one is scored in-process: add --trust if you trust its code")
        specs = register_remote(box, loaded)
        if not specs:
            raise SubmissionError(f"{path}: {NOTHING_REGISTERED}")
    except BaseException:
        box.close()
        raise
    return specs, box


def submission_defenses(path: str | Path, trust: bool = True, timeout: float = 600.0) -> list[Defense]:
    """Builds each defense a submission file registers, with default arguments.

    Args:
        path: the file.
        trust: load it in this process (the project's own files, or a user's own code); else
            in a sandbox, where it reaches the harness only through arrays.
        timeout: seconds any one sandbox request may take.
    """
    out = []
    specs = load_submission(path) if trust else sandboxed_submission(path, timeout)[0]
    for spec in specs:
        try:
            out.append(build_defense(spec))
        except Exception as e:
            raise SubmissionError(f"{path}: cannot build {spec} with default arguments: {e}") from None
    return out
