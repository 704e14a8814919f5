"""``bench.core.host``: host-code (NumPy/PIL/PyTorch) transforms behind ``jax.pure_callback``, and
spec-named rows for every registered transform."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench import HostError, Transform, bpda, build_transform, host_transform, register_transform
from bench.cli.main import main
from bench.submissions.submit import ContractError, SubmissionError, load_submission, validate_transform

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = jax.random.key(0)


def _images(n: int = 6, seed: int = 0) -> jax.Array:
    x = jax.random.uniform(jax.random.key(seed), (n, 32, 32, 3))
    return x.at[:, :8].set(jnp.round(x[:, :8] * 4) / 4)  # some flat, some noisy content


def _example(name: str) -> None:
    """Loads ``examples/<name>.py`` once (registration is global)."""
    from bench.core.transform import TRANSFORMS

    if name not in TRANSFORMS.names():
        load_submission(EXAMPLES / f"{name}.py")


# ---- the examples -------------------------------------------------------------------------------

@pytest.mark.parametrize("quality", [10, 75])
def test_the_pil_jpeg_example_is_bit_equal_to_the_builtin_jpeg(quality: int) -> None:
    _example("pil_jpeg")
    x = _images()
    ours = build_transform(f"jpeg(quality={quality})")(x, KEY)
    pil = build_transform(f"pil_jpeg(quality={quality})")
    assert repr(pil) == f"pil_jpeg(quality={quality})"
    np.testing.assert_array_equal(np.asarray(pil(x, KEY)), np.asarray(ours))
    np.testing.assert_array_equal(np.asarray(jax.jit(pil)(x, KEY)), np.asarray(ours))


def test_the_numpy_blur_example_matches_a_reference_gaussian_filter() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    _example("numpy_blur")
    x = np.asarray(_images(3))
    got = np.asarray(build_transform("numpy_blur(sigma=1.0)")(jnp.asarray(x), KEY))
    # OpenCV's BORDER_REFLECT_101 is scipy's "mirror"; radius 3 sigma
    want = ndimage.gaussian_filter(x.astype(np.float64), sigma=(0, 1, 1, 0), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_torch_example_runs_when_torch_is_installed_and_says_what_to_install_when_not() -> None:
    if importlib.util.find_spec("torch") is None:
        with pytest.raises(SubmissionError, match=r"needs PyTorch: pip install -e '\.\[torch\]'"):
            load_submission(EXAMPLES / "torch_median.py")
        pytest.skip("PyTorch is not installed (optional extra [torch]); the example refuses with the install hint")
    _example("torch_median")
    t = build_transform("torch_median(size=3)")
    validate_transform(t)
    x = np.asarray(_images(2))
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    windows = np.stack([p[:, i:i + 32, j:j + 32] for i in range(3) for j in range(3)])
    np.testing.assert_array_equal(np.asarray(t(jnp.asarray(x), KEY)), np.median(windows, axis=0))


# ---- the wrapper --------------------------------------------------------------------------------

@host_transform("host_test_noise", randomized=True)
def _noise(x: np.ndarray, rng: np.random.Generator, sigma: float = 0.05) -> np.ndarray:
    return np.clip(x + sigma * rng.standard_normal(x.shape), 0.0, 1.0).astype(np.float32)


@host_transform("host_test_invert", dtype="uint8")
def _invert(x: np.ndarray) -> np.ndarray:
    assert x.dtype == np.uint8
    return 255 - x


def test_uint8_host_functions_get_the_8_bit_levels() -> None:
    x = _images(2)
    y = build_transform("host_test_invert()")(x, KEY)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), 1.0 - np.round(np.asarray(x) * 255) / 255, atol=1e-6)


def test_randomized_host_code_is_seeded_from_the_key() -> None:
    t = build_transform("host_test_noise(sigma=0.1)")
    x = _images(3)
    k1, k2 = jax.random.split(jax.random.key(5))
    a, b, c = (np.asarray(t(x, k)) for k in (k1, k1, k2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    validate_transform(t)  # deterministic per key, randomized declared, jit equal to eager


def test_host_transforms_work_under_jit_vmap_and_bpda() -> None:
    t = build_transform("host_test_noise()")
    x = _images(2)
    keys = jax.random.split(jax.random.key(9), 4)
    mapped = jax.jit(jax.vmap(t, in_axes=(None, 0)))(x, keys)  # EOT's shape of call
    np.testing.assert_array_equal(np.asarray(mapped), np.stack([np.asarray(t(x, k)) for k in keys]))
    w = jax.random.normal(jax.random.key(1), x.shape)
    g = jax.jit(jax.grad(lambda z: jnp.sum(w * bpda(t)(z, KEY))))(x)  # BPDA: the identity's gradient
    np.testing.assert_allclose(np.asarray(g), np.asarray(w))
    assert t.surrogates == ("identity",)


BAD_OUTPUTS = {
    "shape": (lambda x: x[:, :16], "returned shape (4, 16, 32, 3) for an input of shape (4, 32, 32, 3)"),
    "nan": (lambda x: np.where(x > 0.5, np.nan, x).astype(np.float32), "non-finite values"),
    "range": (lambda x: 2 * x, "expected within [0, 1]"),
    "type": (lambda x: x.tolist(), "returned list, expected a numpy array"),
    "int": (lambda x: (255 * x).astype(np.int32), "returned dtype int32, expected float32"),
    "raises": (lambda x: 1 / 0, "failed on a batch of shape (4, 32, 32, 3): ZeroDivisionError"),
}


@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_a_bad_host_output_is_refused_naming_the_host_function(case: str) -> None:
    body, message = BAD_OUTPUTS[case]

    def broken_host(x: np.ndarray) -> np.ndarray:
        return body(x)

    cls = host_transform(f"host_test_bad_{case}")(broken_host)
    with pytest.raises(ContractError) as e:
        validate_transform(cls())
    text = str(e.value)
    assert "'runs' failed" in text and message in text, text
    assert "host function tests.core.test_host" in text, text
    assert "broken_host" in text, text


def test_a_uint8_host_function_must_return_uint8() -> None:
    cls = host_transform("host_test_bad_levels", dtype="uint8")(lambda x: x.astype(np.float32) / 255)
    with pytest.raises(HostError, match="returned dtype float32, expected uint8"):
        np.asarray(cls()._run(np.zeros((1, 4, 4, 3), np.uint8), None))


def test_the_decorator_refuses_signatures_it_cannot_turn_into_a_spec() -> None:
    with pytest.raises(ValueError, match=r"must take \(x, rng, \*\*hyperparameters\)"):
        host_transform("host_test_sig1", randomized=True)(lambda x: x)
    with pytest.raises(ValueError, match="cannot be spec fields"):
        host_transform("host_test_sig2")(lambda x, **kw: x)
    with pytest.raises(ValueError, match="dtype must be one of"):
        host_transform("host_test_sig3", dtype="float64")
    with pytest.raises(ValueError, match=r"spec_fields \['q'\] are not parameters"):
        host_transform("host_test_sig4", spec_fields=("q",))(lambda x, quality=1: x)


# ---- spec-named rows ----------------------------------------------------------------------------

@register_transform("repr_test_after")
@dataclasses.dataclass(frozen=True)  # no repr=False: dataclasses would write ReprAfter(strength=2.0)
class ReprAfter(Transform):
    strength: float = 1.0

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        return x


@dataclasses.dataclass(frozen=True)
@register_transform("repr_test_before")
class ReprBefore(Transform):
    strength: float = 1.0

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        return x


@pytest.mark.parametrize("cls", [ReprAfter, ReprBefore])
def test_every_registered_transform_is_named_by_its_spec_whatever_its_dataclass_options(cls: type) -> None:
    t = cls(strength=2.0)
    assert repr(t) == t.spec == f"{cls.spec_name}(strength=2.0)"
    assert build_transform(repr(t)) == t
    from bench.core.defense import build_defense

    assert build_defense(repr(t)).spec == repr(t)


@register_transform("repr_test_hidden")
@dataclasses.dataclass(frozen=True)
class HiddenField(Transform):
    strength: float = dataclasses.field(default=1.0, repr=False)  # a hyperparameter the spec leaves out

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        return jnp.clip(x * self.strength, 0, 1)


def test_the_spec_check_refuses_a_transform_its_spec_does_not_rebuild() -> None:
    with pytest.raises(ContractError, match=r"'spec' failed: its spec 'repr_test_hidden\(\)' rebuilds"):
        validate_transform(HiddenField(strength=0.5))


# ---- scoring ------------------------------------------------------------------------------------

def test_the_pil_jpeg_submission_scores_exactly_like_jpeg_where_the_surrogate_is_the_same(
        world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.bench_world import NON_ADAPTIVE, small_protocol

    protocol = small_protocol(monkeypatch, world, tmp_path / "protocols", "tiny-shared", NON_ADAPTIVE)
    results = tmp_path / "results"
    assert main(["run", "--protocol", protocol, "--defense", "jpeg(quality=75)", "--results", str(results)]) == 0
    assert main(["submit", str(EXAMPLES / "pil_jpeg.py"), "--protocol", protocol, "--record",
                 "--results", str(results)]) == 0
    stored = {json.loads(f.read_text())["defense"]["spec"]: json.loads(f.read_text())
              for f in (results / protocol).glob("*.json")}
    ours, pil = stored["jpeg(quality=75)"], stored["pil_jpeg(quality=75)"]
    assert ours["clean_accuracy"] == pil["clean_accuracy"]
    shared = [(a["attack"], a["knowledge"]) for a in ours["attacks"] if a["knowledge"] in ("gray-box", "transfer")]
    assert len(shared) >= 4
    by_key = {(a["attack"], a["knowledge"]): a for a in pil["attacks"]}
    for key in shared:
        a = next(a for a in ours["attacks"] if (a["attack"], a["knowledge"]) == key)
        assert by_key[key]["robust_accuracy"] == a["robust_accuracy"], key


def test_a_host_function_that_breaks_only_on_real_batches_stops_the_run_with_its_name(world, tmp_path: Path,
                                                                                       capsys) -> None:
    f = tmp_path / "late_break.py"
    f.write_text(textwrap.dedent('''
        import numpy as np
        from bench import host_transform

        @host_transform("late_break")
        def late_break(x, strength=1.0):
            if len(x) > 4:  # the contract's synthetic batch has 4 images
                return np.full_like(x, np.nan)
            return x
    '''))
    assert main(["submit", str(f), "--protocol", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "late_break(): host function" in err and "late_break" in err and "non-finite" in err, err
