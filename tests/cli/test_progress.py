"""``bench.cli.progress``: plain-line progress for logs (one line per stage, a heartbeat, ETA)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.cli.progress import LineProgress


@dataclass
class Event:
    stage: str
    done: int
    total: int


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_line_per_stage_a_heartbeat_in_silence_and_an_eta() -> None:
    lines: list[str] = []
    clock = Clock()
    p = LineProgress(lines.append, interval=60.0, now=clock)
    p(Event("gray-box pgd(eps=8)", 0, 4))
    assert lines == ["gray-box pgd(eps=8): 0/4 batches, 0:00 elapsed, ETA unknown"]
    clock.t += 30
    p(Event("gray-box pgd(eps=8)", 1, 4))  # within the interval: silent
    p.heartbeat()
    assert len(lines) == 1
    clock.t += 35  # 65 s of silence since the stage's first line: a heartbeat
    p.heartbeat()
    assert lines[-1] == "gray-box pgd(eps=8): 1/4 batches, 1:05 elapsed, ETA 3:15"
    clock.t += 30  # 30 s since that heartbeat: silent again
    p.heartbeat()
    assert len(lines) == 2
    clock.t += 300
    p(Event("gray-box pgd(eps=8)", 4, 4))  # the end of a stage is always written
    assert lines[-1] == "gray-box pgd(eps=8): 4/4 batches, 6:35 elapsed"
    assert len(lines) == 3
    p(Event("transfer fgsm(eps=8)", 0, 2))
    assert lines[-1].startswith("transfer fgsm(eps=8): 0/2 batches")
    assert all(len(line) <= 80 for line in lines)


def test_a_run_in_a_log_prints_progress_lines(world, tmp_path: Path, capsys) -> None:
    from bench.cli.main import main

    assert main(["run", "--protocol", "tiny", "--defense", "identity()", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "gray-box fgsm(eps=8): 0/2 batches" in out and "gray-box fgsm(eps=8): 2/2 batches" in out, out
    assert "adaptive pgd(eps=8, steps=5): 2/2 batches" in out
