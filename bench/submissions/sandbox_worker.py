"""The far end of the sandbox: runs one submission file, confined, and answers array requests.

Started by ``bench.submissions.sandbox.Sandbox`` as ``python -c BOOT <this file> <repo root> <config>``; it
confines itself (``bench.submissions.isolation``, loaded by path so that nothing else is imported first),
then imports ``bench``, executes the submission and serves requests read from stdin, one at a
time, answering on the original stdout (``bench.submissions.wire``). The submission's own prints go to
stderr. Requests:

* ``load``: execute the file; answer the transform, defense and model names it registered,
  and each defense factory's parameters (name and default, as Python literals).
* ``validate`` (a defense spec): the contract checks (``bench.submissions.submit``), here, on its code,
  and the ``fresh`` check (the file executed a second time gives the same outputs).
* ``transform`` / ``defense`` (a spec): what the harness needs to stand in for it: canonical
  specs, ``randomized``, ``surrogates``, members, vote, pairing.
* ``call`` (transform spec; x, key data), ``approx`` (+ surrogate) and ``vjp`` (+ surrogate;
  x, key data, cotangent): the transform's output, a surrogate's output and the surrogate's
  vector-Jacobian product (``"own"``: through the transform itself), jit-compiled once each.

An exception is answered as ``{"error", "kind", "check"}``; the worker keeps serving.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback


def _load_isolation(root: str):
    spec = importlib.util.spec_from_file_location("shieldbench_isolation", os.path.join(root, "bench", "submissions", "isolation.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main(root: str, config_text: str) -> None:
    config = json.loads(config_text)
    out = os.fdopen(os.dup(1), "wb")  # the protocol's channel; fd 1 becomes stderr for the submission's prints
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    isolation = _load_isolation(root)
    error = None
    try:
        confinement = isolation.confine(config["read"], config["write"], config["protected"],
                                        int(config["cpu_seconds"])).to_json()
    except OSError as e:
        confinement, error = None, f"confining the worker failed: {e}"
    sys.path.insert(0, root)
    from bench.submissions import wire

    wire.send(out, {"confinement": confinement, "error": error})
    if error:
        return
    server = _Server(config["submission"])
    while True:
        try:
            header, arrays = wire.receive(sys.stdin.buffer)
        except wire.WireError:
            return  # the harness closed the pipe
        if header.get("op") == "shutdown":
            return
        try:
            reply, out_arrays = server.handle(header, arrays)
        except Exception as e:  # answered, not fatal: the harness raises it with the file's name
            from bench.core.host import host_error_in

            inner = host_error_in(e)  # a host function's error, out of XLA's callback wrapping
            reply, out_arrays = {"error": inner or str(e),
                                 "kind": "HostError" if inner else type(e).__name__,
                                 "check": getattr(e, "check", None),
                                 "trace": traceback.format_exc(limit=-3)}, ()
        wire.send(out, reply, tuple(out_arrays))


class _Server:
    def __init__(self, path: str):
        self.path = path
        self._fns: dict = {}

    def handle(self, header: dict, arrays: list) -> tuple[dict, tuple]:
        op = header.get("op")
        if op == "load":
            return self.load(), ()
        if op == "validate":
            from bench.core.defense import build_defense
            from bench.submissions.submit import check_fresh_load, validate_defense

            defense = build_defense(header["spec"])
            validate_defense(defense)
            check_fresh_load(self.path, defense)
            return {"ok": True}, ()
        if op == "transform":
            from bench.core.transform import build_transform

            return self.describe(build_transform(header["spec"])), ()
        if op == "defense":
            from bench.core.defense import build_defense

            d = build_defense(header["spec"])
            return {"spec": d.spec, "transforms": [self.describe(t) for t in d.transforms],
                    "members": list(d.members), "vote": d.vote, "pairing": d.pairing}, ()
        if op in ("call", "approx", "vjp"):
            return {"ok": True}, (self.compute(op, header["spec"], header.get("surrogate"), arrays),)
        raise ValueError(f"unknown request {op!r}")

    def load(self) -> dict:
        import inspect

        from bench.core.defense import DEFENSES
        from bench.submissions.submit import execute_submission

        registered = execute_submission(self.path)
        params = {}
        for name in registered.defenses:
            sig = inspect.signature(DEFENSES.get(name))
            params[name] = [[p.name, None if p.default is p.empty else repr(p.default)]
                            for p in sig.parameters.values()]
        return {"transforms": registered.transforms, "defenses": registered.defenses, "defense_params": params,
                "models": registered.models}

    @staticmethod
    def describe(t) -> dict:
        return {"spec": repr(t), "name": type(t).spec_name, "randomized": bool(t.randomized),
                "surrogates": list(t.surrogates), "key_free_work": bool(t.key_free_work)}

    def compute(self, op: str, spec: str, surrogate: str | None, arrays: list):
        import jax
        import numpy as np

        from bench.core.transform import build_transform, check_surrogate

        k = (op, spec, surrogate)
        if k not in self._fns:
            t = build_transform(spec)
            if op == "call":
                fn = jax.jit(lambda x, kd: t(x, jax.random.wrap_key_data(kd)))
            else:
                check_surrogate(t, surrogate)

                def surrogate_fn(z, kd, t=t, s=surrogate):
                    key = jax.random.wrap_key_data(kd)
                    return t(z, key) if s == "own" else t.approx(z, key, s)

                if op == "approx":
                    fn = jax.jit(surrogate_fn)
                else:
                    fn = jax.jit(lambda x, kd, g: jax.vjp(lambda z: surrogate_fn(z, kd), x)[1](g)[0])
            self._fns[k] = fn
        x, kd = np.asarray(arrays[0], np.float32), np.asarray(arrays[1], np.uint32)
        rest = [np.asarray(arrays[2], np.float32)] if op == "vjp" else []
        return np.asarray(self._fns[k](x, kd, *rest), np.float32)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
