"""``bench.zoo.user_models``: a user's own model (Flax module + weights, or any JAX function) as a
defense member or a protocol's base, with its card checks."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench import ZooError, load_model, register_model
from bench.cli.main import main
from bench.submissions.submit import SubmissionError, load_model_file
from bench.zoo.user_models import USER_MODELS


@pytest.fixture(autouse=True)
def _forget_user_models():
    before = dict(USER_MODELS)
    yield
    USER_MODELS.clear()
    USER_MODELS.update(before)


def _linear(seed: int = 0):
    w = jax.random.normal(jax.random.key(seed), (32 * 32 * 3, 10)) * 0.01
    return lambda x: x.reshape(x.shape[0], -1) @ w


def test_a_jax_function_is_a_model_identified_by_its_fingerprint() -> None:
    register_model("user_linear", logits=_linear(0), input_shape=(32, 32, 3), num_classes=10)
    m = load_model("user_linear")
    assert m.card["arch"] == "user" and m.card["weights_sha256"].startswith("fingerprint:")
    x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3))
    np.testing.assert_allclose(np.asarray(m.predict(x)), np.asarray(_linear(0)(x)), rtol=1e-5, atol=1e-6)
    first = m.card["weights_sha256"]
    register_model("user_linear", logits=_linear(1), input_shape=(32, 32, 3), num_classes=10)  # same file: replaces
    assert load_model("user_linear").card["weights_sha256"] != first  # other weights, other identity


def test_a_flax_module_with_weights_loads_verified_and_equals_the_zoo_model(world) -> None:
    from bench.zoo.models import create_model

    weights = world["zoo"] / "resnet20.msgpack"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    register_model("user_copy", module=create_model("resnet8"), weights=weights, weights_sha256=sha,
                   input_shape=(32, 32, 3), num_classes=10)
    x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3))
    np.testing.assert_array_equal(np.asarray(load_model("user_copy").predict(x)),
                                  np.asarray(load_model("resnet20").predict(x)))
    assert load_model("user_copy").card["weights_sha256"] == sha
    register_model("user_bad_sha", module=create_model("resnet8"), weights=weights, weights_sha256="0" * 64,
                   input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ZooError, match=r"resnet20\.msgpack: sha256 .* does not match the 0000"):
        load_model("user_bad_sha")
    register_model("user_no_file", module=create_model("resnet8"), weights=world["zoo"] / "nope.msgpack",
                   weights_sha256=sha, input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ZooError, match=r"nope\.msgpack: weights file of model 'user_no_file' .* is missing"):
        load_model("user_no_file")
    register_model("user_wrong_arch", module=create_model("resnet20"), weights=weights, weights_sha256=sha,
                   input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ZooError, match="'user_wrong_arch' .* fails on a probe batch"):
        load_model("user_wrong_arch")


BAD_MODELS = {
    "shape": (lambda x: jnp.zeros((x.shape[0], 7)), "logits of shape (4, 7) for input (4, 32, 32, 3), expected (4, 10)"),
    "dtype": (lambda x: jnp.zeros((x.shape[0], 10), jnp.int32), "logits of dtype int32"),
    "finite": (lambda x: jnp.full((x.shape[0], 10), jnp.nan), "non-finite logits"),
    "deterministic": (lambda x: jnp.asarray(np.random.default_rng().normal(size=(x.shape[0], 10)), jnp.float32),
                      "two calls on the same images gave different logits"),
    "raises": (lambda x: x @ x, "fails on a probe batch (4, 32, 32, 3)"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_model_with_wrong_outputs_is_refused_naming_it(case: str) -> None:
    fn, message = BAD_MODELS[case]
    register_model(f"user_bad_{case}", logits=fn, input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ZooError) as e:
        load_model(f"user_bad_{case}")
    assert f"model 'user_bad_{case}' (registered in {__file__})" in str(e.value) and message in str(e.value), e.value


def test_registration_refuses_what_a_card_cannot_hold(world) -> None:
    with pytest.raises(ValueError, match="either logits=.* or module="):
        register_model("user_x", input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ValueError, match="input_shape must be"):
        register_model("user_x", logits=_linear(), input_shape=(32, 32), num_classes=10)
    with pytest.raises(ValueError, match="num_classes must be"):
        register_model("user_x", logits=_linear(), input_shape=(32, 32, 3), num_classes=1)
    with pytest.raises(ValueError, match="3 class names for num_classes=10"):
        register_model("user_x", logits=_linear(), input_shape=(32, 32, 3), num_classes=10, classes=("a", "b", "c"))
    with pytest.raises(ValueError, match="needs weights=.* and weights_sha256"):
        register_model("user_x", module=object(), input_shape=(32, 32, 3), num_classes=10)
    with pytest.raises(ValueError, match="the zoo already has a model of that name"):
        register_model("resnet20", logits=_linear(), input_shape=(32, 32, 3), num_classes=10)


def test_safetensors_weights_need_the_package_or_load(world, tmp_path: Path) -> None:
    from bench.zoo.models import create_model

    f = tmp_path / "w.safetensors"
    try:
        import safetensors.numpy as stn
    except ImportError:
        f.write_bytes(b"x")
        register_model("user_st", module=create_model("resnet8"), weights=f,
                       weights_sha256=hashlib.sha256(b"x").hexdigest(), input_shape=(32, 32, 3), num_classes=10)
        with pytest.raises(ZooError, match="reading .safetensors needs the safetensors package"):
            load_model("user_st")
        return
    zoo = load_model("resnet20")
    flat = {"/".join(str(k.key) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_flatten_with_path(zoo.variables)[0]}
    f.write_bytes(stn.save(flat))
    register_model("user_st", module=create_model("resnet8"), weights=f,
                   weights_sha256=hashlib.sha256(f.read_bytes()).hexdigest(), input_shape=(32, 32, 3), num_classes=10)
    x = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
    np.testing.assert_array_equal(np.asarray(load_model("user_st").predict(x)), np.asarray(zoo.predict(x)))


SUBMISSION = '''
from bench import Defense, build_transform, register_defense, register_model
from bench.zoo.models import create_model

register_model("user_tiny", module=create_model("resnet8"), weights={weights!r}, weights_sha256={sha!r},
               input_shape=(32, 32, 3), num_classes=10)


@register_defense("user_member_jpeg")
def user_member_jpeg(quality: int = 75) -> Defense:
    return Defense(build_transform(f"jpeg(quality={{quality}})"), members=("user_tiny",))
'''


def _submission(world, tmp_path: Path, model_only: bool = False) -> Path:
    weights = world["zoo"] / "resnet20.msgpack"
    f = tmp_path / "user_sub.py"
    text = SUBMISSION.format(weights=str(weights), sha=hashlib.sha256(weights.read_bytes()).hexdigest())
    if model_only:  # a --model file: the model and nothing else
        text = text[:text.index("@register_defense")]
    f.write_text(textwrap.dedent(text))
    return f


def _stored(results: Path, protocol: str) -> dict[str, dict]:
    return {r["defense"]["spec"]: r for r in (json.loads(f.read_text()) for f in (results / protocol).glob("*.json"))}


def _shared_numbers(r: dict) -> dict:
    return {(a["attack"], a["knowledge"]): a["robust_accuracy"] for a in r["attacks"]
            if a["knowledge"] in ("gray-box", "transfer")}


def test_a_submission_with_its_own_model_scores_like_the_same_weights_in_the_zoo(
        world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.bench_world import NON_ADAPTIVE, small_protocol

    protocol = small_protocol(monkeypatch, world, tmp_path / "protocols", "tiny-shared", NON_ADAPTIVE)
    results = tmp_path / "results"
    sub = _submission(world, tmp_path)
    # a model runs in the harness: a file that brings one is scored in-process, and only when trusted
    assert main(["submit", str(sub), "--protocol", protocol, "--record", "--results", str(results), "--trust"]) == 0
    assert main(["run", "--protocol", protocol, "--defense", "jpeg(quality=75)", "--results", str(results)]) == 0
    stored = _stored(results, protocol)
    assert stored["user_member_jpeg()"]["provenance"]["submission"]["trusted"] is True
    user, zoo = stored["user_member_jpeg()"], stored["jpeg(quality=75)"]
    assert user["clean_accuracy"] == zoo["clean_accuracy"]
    assert _shared_numbers(user) == _shared_numbers(zoo) and len(_shared_numbers(user)) >= 4


def test_a_protocol_can_take_a_user_model_as_its_base_through_model_files(world, tmp_path: Path) -> None:
    sub = _submission(world, tmp_path, model_only=True)
    protocol = tmp_path / "tiny_user.toml"
    protocol.write_text((world["protocols"] / "tiny.toml").read_text()
                        .replace('name = "tiny"', 'name = "tiny_user"').replace('base = "resnet20"', 'base = "user_tiny"'))
    results = tmp_path / "results"
    assert main(["run", "--protocol", str(protocol), "--defense", "identity()", "--model", str(sub),
                 "--results", str(results)]) == 0
    assert main(["run", "--protocol", "tiny", "--defense", "identity()", "--results", str(results)]) == 0
    user, zoo = _stored(results, "tiny_user")["identity()"], _stored(results, "tiny")["identity()"]
    assert _shared_numbers(user) == _shared_numbers(zoo)
    assert "--model" in user["provenance"]["command"] and str(sub) in user["provenance"]["command"]
    assert user["provenance"]["model_files"][0]["models"] == ["user_tiny", ]
    # check re-loads the recorded model file by itself
    USER_MODELS.pop("user_tiny")
    assert main(["check", "--protocol", str(protocol), "--results", str(results), "--cached"]) == 0


def test_a_model_file_must_register_a_model(tmp_path: Path) -> None:
    f = tmp_path / "nothing.py"
    f.write_text("x = 1\n")
    with pytest.raises(SubmissionError, match="registers no model"):
        load_model_file(f)
