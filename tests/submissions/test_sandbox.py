"""The sandbox (``bench.submissions.sandbox``, ``bench.submissions.isolation``, ``bench.submissions.wire``): what a submission cannot do."""

from __future__ import annotations

import io
import json
import socket
import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.cli.main import main
from bench.submissions.isolation import landlock_abi

needs_landlock = pytest.mark.skipif(landlock_abi() == 0, reason="this kernel has no Landlock: no sandbox to test")

HOSTILE = textwrap.dedent('''
    import dataclasses, os, socket

    import bench.core.defense
    import bench.eval.metrics
    from bench import Transform, register_transform

    log = []
    for what, fn in [
        ("write", lambda: open({target!r}, "w").write("x")),
        ("read-cache", lambda: os.listdir({cache!r})),
        ("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
        ("signal", lambda: os.kill(os.getppid(), 0)),
    ]:
        try:
            fn()
            log.append(what + "=allowed")
        except Exception as e:
            log.append(what + "=refused")
    # a "defense" that rewrites the metric and the vote: in the sandbox this touches only the worker
    bench.eval.metrics.attack_metrics = lambda *a, **k: {{"robust_accuracy": 1.0}}
    bench.core.defense.combine = lambda *a, **k: None
    print("LOG " + " ".join(log))


    @register_transform("{name}")
    @dataclasses.dataclass(frozen=True, repr=False)
    class Hostile(Transform):
        def __call__(self, x, key):
            del key
            return x
''')


def _hostile(tmp_path: Path, name: str, cache: Path, port: int) -> Path:
    f = tmp_path / "sub" / f"{name}.py"
    f.parent.mkdir()
    f.write_text(HOSTILE.format(name=name, target=str(tmp_path / "outside.txt"), cache=str(cache), port=port))
    return f


@needs_landlock
def test_a_submission_cannot_write_read_the_cache_connect_or_signal(tmp_path: Path, isolated_cache: Path) -> None:
    from bench.submissions.submit import sandboxed_submission

    (isolated_cache / "adversarial").mkdir(parents=True, exist_ok=True)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        f = _hostile(tmp_path, "hostile_probe", isolated_cache, server.getsockname()[1])
        specs, box = sandboxed_submission(f, timeout=120)
        try:
            assert specs == ["hostile_probe()"]
            log = next(line for line in box._tail().splitlines() if line.startswith("LOG "))
            assert log.split()[1:] == ["write=refused", "read-cache=refused", "connect=refused", "signal=refused"]
            assert box.confinement["landlock_abi"] >= 1 and box.confinement["network"] in ("namespace", "tcp-denied")
        finally:
            box.close()
    assert not (tmp_path / "outside.txt").exists()


@needs_landlock
def test_a_submission_that_patches_the_harness_scores_like_the_identity(world, tmp_path: Path, isolated_cache: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.eval.metrics
    from tests.bench_world import NON_ADAPTIVE, small_protocol

    protocol = small_protocol(monkeypatch, world, tmp_path / "protocols", "tiny-shared", NON_ADAPTIVE)
    original = bench.eval.metrics.attack_metrics
    results = tmp_path / "results"
    f = _hostile(tmp_path, "hostile_identity", isolated_cache, 9)
    assert main(["submit", str(f), "--protocol", protocol, "--record", "--results", str(results)]) == 0
    assert len(list((results / protocol).glob("*.json"))) == 1 and (tmp_path / f"{protocol}.md").is_file()  # page
    assert bench.eval.metrics.attack_metrics is original
    assert main(["run", "--protocol", protocol, "--defense", "identity()", "--results", str(results)]) == 0
    stored = {r["defense"]["spec"]: r for r in (json.loads(p.read_text()) for p in (results / protocol).glob("*.json"))}
    ours, theirs = stored["identity()"], stored["hostile_identity()"]
    assert theirs["clean_accuracy"] == ours["clean_accuracy"]
    assert [a["robust_accuracy"] for a in theirs["attacks"]] == [a["robust_accuracy"] for a in ours["attacks"]]
    sub = theirs["provenance"]["submission"]
    assert sub["trusted"] is False and sub["isolation"]["landlock_abi"] >= 1


SMOOTH = textwrap.dedent('''
    import dataclasses

    import jax
    import jax.numpy as jnp

    from bench import Transform, register_transform


    @register_transform("{name}")
    @dataclasses.dataclass(frozen=True, repr=False)
    class Smooth(Transform):
        """A randomized, differentiable toy: noise, then a square; surrogates identity, own and half."""

        sigma: float = 0.05
        randomized = True
        surrogates = ("identity", "own", "half")

        def __call__(self, x, key):
            return jnp.clip(x + self.sigma * jax.random.normal(key, x.shape), 0.0, 1.0) ** 2

        def approx(self, x, key, surrogate="identity"):
            if surrogate == "half":
                return 0.5 * x
            return super().approx(x, key, surrogate)
''')


@needs_landlock
def test_stand_ins_compute_the_same_outputs_and_gradients_as_the_code_itself(tmp_path: Path) -> None:
    import jax
    import jax.numpy as jnp

    from bench.submissions.submit import load_submission, sandboxed_submission
    from bench.core.transform import bpda, build_transform

    (tmp_path / "a").mkdir()
    here, there = tmp_path / "a" / "smooth_here.py", tmp_path / "smooth_there.py"
    here.write_text(SMOOTH.format(name="smooth_here"))
    there.write_text(SMOOTH.format(name="smooth_there"))
    load_submission(here)
    local = build_transform("smooth_here(sigma=0.1)")
    specs, box = sandboxed_submission(there, timeout=120)
    try:
        remote = build_transform("smooth_there(sigma=0.1)")
        assert repr(remote) == "smooth_there(sigma=0.1)" and remote.randomized
        assert remote.surrogates == ("identity", "own", "half") and build_transform(repr(remote)) == remote
        x = jax.random.uniform(jax.random.key(0), (3, 8, 8, 3))
        keys = jax.random.split(jax.random.key(1), 2)
        for s in remote.surrogates:
            w = jax.random.normal(jax.random.key(2), x.shape)

            def loss(t, z, key, s=s):
                return jnp.sum(w * bpda(t, s)(z, key))

            g_local = jax.jit(jax.grad(lambda z, k: loss(local, z, k)))(x, keys[0])
            g_remote = jax.jit(jax.grad(lambda z, k: loss(remote, z, k)))(x, keys[0])
            np.testing.assert_allclose(g_remote, g_local, rtol=1e-5, atol=1e-6, err_msg=s)
        # EOT: vmap over keys, one callback per key, the same draws as the code itself
        y_local = jax.vmap(lambda k: local(x, k))(keys)
        y_remote = jax.jit(jax.vmap(lambda k: remote(x, k)))(keys)
        np.testing.assert_allclose(y_remote, y_local, rtol=1e-6, atol=1e-6)
        assert not np.allclose(y_remote[0], y_remote[1])
    finally:
        box.close()


def test_a_model_file_needs_trust(world, tmp_path: Path, capsys) -> None:
    f = tmp_path / "with_model.py"
    f.write_text(textwrap.dedent('''
        import jax.numpy as jnp
        from bench import register_model, register_transform, Transform
        register_model("sandbox_probe_model", logits=lambda x: jnp.zeros((x.shape[0], 10)), input_shape=(32, 32, 3),
                       num_classes=10)
    '''))
    assert main(["submit", str(f), "--protocol", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "registers model(s) ['sandbox_probe_model']" in err and "--trust" in err or "no Landlock" in err


# ---- the wire ------------------------------------------------------------------------------------

def test_the_wire_carries_arrays_and_refuses_pickles_and_oversized_headers() -> None:
    from bench.submissions import wire

    buf = io.BytesIO()
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    wire.send(buf, {"op": "call", "spec": "a()"}, (x, np.array([1, 2], np.uint32)))
    buf.seek(0)
    header, arrays = wire.receive(buf)
    assert header == {"op": "call", "spec": "a()"} and np.array_equal(arrays[0], x) and arrays[1].dtype == np.uint32
    # a pickled object array is refused (np.load(allow_pickle=False)), so nothing is unpickled here
    payload = io.BytesIO()
    np.save(payload, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    body = json.dumps({"arrays": 1}).encode()
    evil = struct.pack("<Q", len(body)) + body + struct.pack("<Q", payload.tell()) + payload.getvalue()
    with pytest.raises(wire.WireError, match="not a plain .npy"):
        wire.receive(io.BytesIO(evil))
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.receive(io.BytesIO(struct.pack("<Q", wire.MAX_HEADER + 1)))
    with pytest.raises(wire.WireError, match="closed after 3 of 8"):
        wire.receive(io.BytesIO(b"abc"))
