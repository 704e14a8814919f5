"""Submitted code runs in a confined process; only arrays cross back (issue 23's trust model).

``shieldbench submit FILE`` does not import ``FILE``. A :class:`Sandbox` starts a worker
(``bench.submissions.sandbox_worker``) that confines itself (``bench.submissions.isolation``: Landlock, a network
namespace, rlimits) and only then executes the file. The harness registers stand-ins under the
names the file registered: a :class:`RemoteTransform` per transform, a defense factory per
defense. A stand-in's ``__call__`` is a ``jax.pure_callback`` to the worker, batched and safe
under jit and vmap like any host-code transform (``bench.core.host``); its gradients are custom VJPs
whose backward pass asks the worker for the surrogate's vector-Jacobian product. So attacks,
EOT, scoring, metrics, results and pages are computed by the harness alone, on arrays the
worker returns (shape and dtype checked here, values by the scoring path's batch checks), and
the file cannot reach the harness's functions, files, caches or network.

Every request has a deadline (``--timeout``); a worker that misses it is killed and the error
names the file and the request. The worker's stderr (the file's prints) is kept in its private
directory and its tail shown with an error.

Transforms of a submitted defense that are built into shieldbench (``jpeg(quality=75)``) run
in the harness, as their own code; the models of a defense must be zoo models or models given
with ``--model`` (the user's own code, loaded in-process). A file that registers models is
refused unless the user trusts it (``--trust``), which loads it in-process as before.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import inspect
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.submissions import wire
from bench.core.host import HostError
from bench.core.transform import Images, Transform, check_surrogate

ROOT = Path(__file__).resolve().parents[2]
_BOOT = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('shieldbench_worker', sys.argv[1]); "
         "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.main(sys.argv[2], sys.argv[3])")
_OPEN: list[Sandbox] = []
"""Sandboxes not yet closed (``close_all`` stops them when a command ends)."""
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "JAX_PLATFORMS", "XLA_FLAGS", "JAX_ENABLE_X64", "OMP_NUM_THREADS")


class SandboxError(HostError):
    """The sandbox could not start, a request took too long, or the worker broke the protocol."""


class _Deadline:
    """A read-only file over a pipe whose reads fail once ``deadline`` (monotonic seconds) passes."""

    def __init__(self, fd: int, deadline: float, what: str):
        self.fd, self.deadline, self.what = fd, deadline, what

    def read(self, n: int) -> bytes:
        left = self.deadline - time.monotonic()
        if left <= 0 or not select.select([self.fd], [], [], left)[0]:
            raise TimeoutError(self.what)
        return os.read(self.fd, n)


class Sandbox:
    """One confined worker running one submission file.

    Args:
        path: the submission file.
        timeout: seconds any one request (loading the file included) may take.
        cpu_seconds: the worker's total CPU time.
        protected: paths the worker must not read (data, caches); the defaults are added.
    """

    def __init__(self, path: str | Path, timeout: float = 600.0, cpu_seconds: int = 24 * 3600,
                 protected: tuple[str, ...] = ()):
        from bench.core.data import default_data_dir
        from bench.core.io import cache_root
        from bench.zoo.store import zoo_dirs

        self.path = Path(path).resolve()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="shieldbench-sandbox-"))
        guarded = [str(cache_root()), str(default_data_dir()), *protected]
        if os.environ.get("SHIELDBENCH_DATA"):
            guarded.append(os.environ["SHIELDBENCH_DATA"])
        # it reads the code (the checkout, the file's directory) and the zoo (a defense's members)
        read = [str(ROOT), str(self.path.parent), *(str(d) for d in zoo_dirs())]
        config = {"read": read, "write": [str(self._dir)], "protected": guarded,
                  "cpu_seconds": int(cpu_seconds), "submission": str(self.path)}
        env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
        env |= {"HOME": str(self._dir), "TMPDIR": str(self._dir), "PYTHONDONTWRITEBYTECODE": "1",
                "SHIELDBENCH_CACHE": str(self._dir / "cache")}
        if os.environ.get("SHIELDBENCH_ZOO"):
            env["SHIELDBENCH_ZOO"] = os.environ["SHIELDBENCH_ZOO"]
        self._stderr = open(self._dir / "stderr.log", "wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(ROOT / "bench" / "submissions" / "sandbox_worker.py"), str(ROOT), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=self._dir, env=env)
        _OPEN.append(self)
        # the worker's own start (importing JAX and shieldbench) is not the file's time
        hello, _ = self._receive("starting the sandbox", max(self.timeout, 120.0))
        if hello.get("error"):
            self.close()
            raise SandboxError(f"{self.path}: {hello['error']}")
        self.confinement: dict[str, Any] = hello["confinement"]

    def _receive(self, what: str, timeout: float | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
        limit = self.timeout if timeout is None else timeout
        reader = _Deadline(self._proc.stdout.fileno(), time.monotonic() + limit, what)
        try:
            return wire.receive(reader)
        except TimeoutError:
            self.close()
            raise SandboxError(f"{self.path}: {what} took longer than --timeout {limit:g} s; the worker "
                               "was stopped") from None
        except wire.WireError as e:
            tail = self._tail()
            self.close()
            raise SandboxError(f"{self.path}: the sandboxed worker broke off while {what} ({e}){tail}") from None

    def _tail(self) -> str:
        try:
            text = (self._dir / "stderr.log").read_bytes()[-1500:].decode(errors="replace").strip()
        except OSError:
            return ""
        return f"\n--- the worker's last output ---\n{text}" if text else ""

    def request(self, header: dict[str, Any], arrays: tuple[np.ndarray, ...] = (), what: str = "") -> tuple[
            dict[str, Any], list[np.ndarray]]:
        """Sends one request and returns the answer.

        Raises:
            RemoteError: the worker answered with the exception the file's code raised.
            SandboxError: the worker is gone, broke the protocol or missed the deadline.
        """
        what = what or f"the request {header.get('op')!r}"
        with self._lock:
            if self._proc.poll() is not None:
                raise SandboxError(f"{self.path}: the sandboxed worker is not running (exit {self._proc.returncode})"
                                   f"{self._tail()}")
            try:
                wire.send(self._proc.stdin, header, arrays)
            except (BrokenPipeError, OSError) as e:
                raise SandboxError(f"{self.path}: cannot reach the sandboxed worker ({e}){self._tail()}") from None
            reply, out = self._receive(what)
        if "error" in reply:
            raise RemoteError(f"{self.path} (sandboxed), {what}", str(reply["error"]), reply.get("kind"),
                              reply.get("check"), str(reply.get("trace", "")))
        return reply, out

    def close(self) -> None:
        """Stops the worker and removes its private directory."""
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self in _OPEN:
            _OPEN.remove(self)

    # ------------------------------------------------------------------ the file's registrations
    def load(self) -> dict[str, Any]:
        """Executes the file in the worker; returns what it registered (see ``bench.submissions.sandbox_worker``)."""
        loaded, _ = self.request({"op": "load"}, what=f"loading {self.path.name}")
        return loaded

    def compute(self, op: str, spec: str, surrogate: str | None, arrays: tuple[np.ndarray, ...],
                shape: tuple[int, ...]) -> np.ndarray:
        """One array from the worker (``call``, ``approx``, ``vjp``), checked to be float32 ``shape``."""
        _, out = self.request({"op": op, "spec": spec, "surrogate": surrogate}, arrays,
                              what=f"{op} of {spec}" + (f" ({surrogate})" if surrogate else ""))
        if len(out) != 1 or out[0].shape != tuple(shape) or out[0].dtype != np.float32:
            got = [f"{a.shape} {a.dtype}" for a in out]
            raise HostError(f"{spec} (sandboxed {self.path.name}): {op} returned {got}, "
                            f"expected float32 {tuple(shape)}")
        return out[0]


def close_all() -> None:
    """Stops every sandbox still running (a CLI command's workers, once it has its results)."""
    for box in list(_OPEN):
        box.close()


atexit.register(close_all)  # whatever a command or a test left running


class RemoteError(HostError):
    """An exception the sandboxed code raised, as text: ``remote`` is the worker's wording,
    ``kind`` the exception's class name, ``check`` a failed contract check's name."""

    def __init__(self, context: str, remote: str, kind: str | None, check: str | None, trace: str):
        ours = kind in ("HostError", "SubmissionError", "ContractError", "SpecError")  # messages that say it all
        super().__init__(f"{context}: {remote}" if ours else f"{context}: {kind}: {remote}")
        self.remote, self.kind, self.check, self.trace = remote, kind, check, trace


def _key_data(key: jax.Array) -> jax.Array:
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


@dataclasses.dataclass(frozen=True, repr=False)
class RemoteTransform(Transform):
    """Stands in for a transform that lives in a sandbox; ``repr`` is its spec there.

    Attributes:
        remote: the transform's canonical spec in the sandbox.
        box: the sandbox (not part of equality).
    """

    remote: str
    box: Sandbox = dataclasses.field(compare=False, hash=False)

    def __post_init__(self) -> None:
        info, _ = self.box.request({"op": "transform", "spec": self.remote}, what=f"building {self.remote}")
        object.__setattr__(self, "remote", info["spec"])
        object.__setattr__(self, "surrogates", tuple(info["surrogates"]))
        object.__setattr__(self, "randomized", bool(info["randomized"]))
        object.__setattr__(self, "key_free_work", bool(info["key_free_work"]))
        object.__setattr__(self, "spec_name", info["name"])

    def __repr__(self) -> str:
        return self.remote

    @property
    def source_file(self) -> str:
        """The submission file whose code this stands in for (hashed into cache keys)."""
        return str(self.box.path)

    def _host(self, op: str, surrogate: str | None):
        def run(*arrays: np.ndarray) -> np.ndarray:
            return self.box.compute(op, self.remote, surrogate, tuple(np.asarray(a) for a in arrays), arrays[0].shape)

        return run

    def _remote(self, op: str, surrogate: str | None, x: Images, key: jax.Array) -> Images:
        out = jax.ShapeDtypeStruct(x.shape, jnp.float32)
        return jax.pure_callback(self._host(op, surrogate), out, x.astype(jnp.float32), _key_data(key),
                                 vmap_method="sequential")

    def _differentiable(self, op: str, surrogate: str | None, grad: str | None):
        """``x, key -> op(x)`` whose VJP is the worker's VJP of ``grad`` (None: no gradient offered)."""

        @jax.custom_vjp
        def f(x: Images, key: jax.Array) -> Images:
            return self._remote(op, surrogate, x, key)

        def fwd(x, key):
            return f(x, key), (x, key)

        def bwd(res, g):
            x, key = res
            if grad is None:
                raise ValueError(f"{self.remote} offers no gradient of its own (its surrogates: {self.surrogates})")
            out = jax.ShapeDtypeStruct(x.shape, jnp.float32)
            gx = jax.pure_callback(self._host("vjp", grad), out, x.astype(jnp.float32), _key_data(key),
                                   g.astype(jnp.float32), vmap_method="sequential")
            return gx, None

        f.defvjp(fwd, bwd)
        return f

    def __call__(self, x: Images, key: jax.Array) -> Images:
        """The sandboxed transform on ``x`` ``[B, H, W, C]``; its own gradient if it offers ``"own"``."""
        return self._differentiable("call", None, "own" if "own" in self.surrogates else None)(x, key)

    def approx(self, x: Images, key: jax.Array, surrogate: str = "identity") -> Images:
        check_surrogate(self, surrogate)
        if surrogate == "identity":
            return x
        if surrogate == "own":
            return self(x, key)
        return self._differentiable("approx", surrogate, surrogate)(x, key)


def register_remote(box: Sandbox, loaded: dict[str, Any]) -> list[str]:
    """Registers stand-ins for what the sandboxed file registered; returns the specs (``name()``)."""
    from bench.core.defense import DEFENSES, Defense
    from bench.core.registry import format_spec
    from bench.core.transform import TRANSFORMS, build_transform

    builtin = {n for n in TRANSFORMS.names() if not _submitted(TRANSFORMS.get(n))}
    for name in loaded["transforms"]:
        TRANSFORMS.register(name, replace=_submitted)(_transform_factory(box, name))
    for name in loaded["defenses"]:
        params = [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY,
                                    default=inspect.Parameter.empty if d is None else ast.literal_eval(d))
                  for p, d in loaded["defense_params"][name]]

        def factory(_name: str = name, **kwargs: Any) -> Defense:
            info, _ = box.request({"op": "defense", "spec": format_spec(_name, kwargs)}, what=f"building {_name}")
            ts = tuple(build_transform(t["spec"]) if t["name"] in builtin else RemoteTransform(t["spec"], box)
                       for t in info["transforms"])
            return Defense(ts if len(ts) > 1 else ts[0], tuple(info["members"]), info["vote"], info["pairing"],
                           spec=info["spec"])

        factory.__signature__ = inspect.Signature(params)
        factory.__qualname__ = f"sandboxed_defense.{name}"
        DEFENSES.register(name, replace=_submitted)(factory)
    return [f"{n}()" for n in sorted({*loaded["transforms"], *loaded["defenses"]})]


def _submitted(entry: Any) -> bool:
    """Whether a registry entry came from a submission (loaded in-process or sandboxed), which a
    sandboxed load of a file with the same names replaces; a built-in one is never replaced."""
    module = getattr(entry, "__module__", "") or ""
    return module.startswith("shieldbench_submission_") or module == __name__


def _transform_factory(box: Sandbox, name: str):
    from bench.core.registry import format_spec

    def factory(*args: Any, **kwargs: Any) -> RemoteTransform:
        if args:
            raise TypeError(f"{name}: give a sandboxed transform's arguments by keyword")
        return RemoteTransform(format_spec(name, kwargs), box)

    factory.__qualname__ = f"sandboxed_transform.{name}"
    return factory
