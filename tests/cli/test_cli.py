"""The command line: train -> zoo -> eval, data fetch failing fast, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli.main import main
from tests.synthetic import write_official


def test_train_then_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    data = write_official(tmp_path, per_batch=32)
    zoo = tmp_path / "zoo"
    monkeypatch.setenv("SHIELDBENCH_ZOO", str(zoo))
    rc = main(["train", "--arch", "resnet8", "--epochs", "1", "--batch-size", "32", "--name", "t8",
               "--data", str(data), "--zoo-dir", str(zoo), "--run-dir", str(tmp_path / "run")])
    assert rc == 0
    card = json.loads((zoo / "t8.json").read_text())
    assert card["command"].startswith("shieldbench train --arch resnet8 --seed 0 --epochs 1")
    assert card["test_images"] == 32 and card["data"]["source"] == "cifar-10-batches-py"
    capsys.readouterr()
    assert main(["eval", "--model", "t8", "--n", "16", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "t8: test accuracy" in out and "on 16 images" in out


def test_fetch_fails_fast_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    import bench.core.data

    # a closed local port: refused at once, like a machine without network
    monkeypatch.setattr(bench.core.data, "CIFAR10_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    t0 = time.perf_counter()
    rc = main(["data", "fetch", "cifar10", "--dest", str(tmp_path / "dl"), "--timeout", "5"])
    assert rc == 2 and time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert "could not download" in err and "no network" in err
    assert not (tmp_path / "dl" / "cifar-10-python.tar.gz").exists()


def test_user_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--model", "resnet2O"]) == 2
    assert "unknown zoo model 'resnet2O'" in capsys.readouterr().err
    assert main(["data", "info", "--data", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_python_m_bench_help() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, check=True).stdout
    assert "SHIELDBENCH_DATA" in out and "train" in out
