"""Model zoo: save/load round trip, hash verification, and the shipped models' accuracy."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench.core.data import load_dataset, subset_indices
from bench.zoo.models import create_model, init_variables
from bench.zoo.store import ZOO_DIR, ZooError, list_models, load_model, read_card, save_model


@pytest.fixture
def tmp_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHIELDBENCH_ZOO", str(tmp_path))
    v = init_variables(create_model("resnet8"), jax.random.key(3), (32, 32, 3))
    save_model("tiny8", v, {"arch": "resnet8", "input_shape": [32, 32, 3], "test_accuracy": 0.1}, tmp_path)
    return tmp_path


def test_round_trip_and_predict(tmp_zoo: Path) -> None:
    m = load_model("tiny8")
    assert m.card["weights_sha256"] and m.card["parameters"] > 0
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    ref = create_model("resnet8").apply(init_variables(create_model("resnet8"), jax.random.key(3), (32, 32, 3)), x)
    assert np.allclose(m.predict(x), ref, atol=1e-5)
    assert np.allclose(m.logits_fn()(x), ref, atol=1e-5)
    assert "tiny8" in list_models()


def test_corrupt_weights_are_refused(tmp_zoo: Path) -> None:
    w = tmp_zoo / "tiny8.msgpack"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="tiny8.msgpack: sha256 .* does not match"):
        load_model("tiny8")
    w.unlink()
    with pytest.raises(ZooError, match="missing"):
        load_model("tiny8")


def test_unknown_model_suggests(tmp_zoo: Path) -> None:
    with pytest.raises(ZooError, match="did you mean tiny8"):
        read_card("tiny9")


SHIPPED = sorted(p.stem for p in ZOO_DIR.glob("*.json"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_is_complete(name: str) -> None:
    card, _ = read_card(name)
    for field in ("arch", "command", "seed", "epochs", "wall_time_s", "test_accuracy", "weights_sha256", "data"):
        assert field in card, f"{name}.json lacks {field}"
    assert card["test_images"] == 10000
    load_model(name)  # verifies the hash


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_accuracy_on_1000_real_images(name: str, real_data: Path, real_cache: Path) -> None:
    test = load_dataset("cifar10", "test", data=real_data)
    idx = subset_indices(len(test), 1000)
    model = load_model(name)
    pred = np.concatenate([np.asarray(jnp.argmax(model.predict(test.as_float(idx[i:i + 500])), -1))
                           for i in range(0, 1000, 500)])
    acc = float(np.mean(pred == test.labels[idx]))
    assert abs(acc - model.card["test_accuracy"]) <= 0.02, f"{name}: {acc:.4f} vs card {model.card['test_accuracy']:.4f}"


FINE_TUNED = [n for n in SHIPPED if read_card(n)[0].get("config", {}).get("init_from")]


@pytest.mark.parametrize("name", FINE_TUNED)
def test_fine_tuned_card_names_the_weights_it_started_from(name: str) -> None:
    # e.g. SHIELD's vaccinated models: stale once the base model they started from is retrained
    card, _ = read_card(name)
    start = card["init_from"]
    assert start["name"] == card["config"]["init_from"]
    assert start["weights_sha256"] == read_card(start["name"])[0]["weights_sha256"], (
        f"{name} was fine-tuned from an older {start['name']}; retrain it (scripts/train_zoo.sh)")
    if card["config"].get("transform"):
        assert 0.0 < card["test_accuracy_transformed"] <= 1.0
