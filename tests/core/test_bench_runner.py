"""`make bench` runs bench/run_all.py: every benchmark script in turn, or the ones named."""

import subprocess
import sys
from pathlib import Path

from bench import run_all

ROOT = Path(__file__).resolve().parent.parent.parent


def test_it_lists_every_benchmark_script_and_nothing_else():
    listed = subprocess.run([sys.executable, "bench/run_all.py", "--list"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert listed == ["audit", "decision_cpu", "decisions", "decisions_scale", "isolation", "master_data", "outbox",
                      "revocation", "round_trips"]


def test_it_runs_the_chosen_benchmarks_in_turn_and_reports_failures(tmp_path, monkeypatch, capfd):
    (tmp_path / "fast.py").write_text('if __name__ == "__main__":\n    print("fast: ratio 0.42")\n')
    (tmp_path / "broken.py").write_text('if __name__ == "__main__":\n    raise SystemExit(3)\n')
    (tmp_path / "helper.py").write_text("VALUE = 1\n")  # not a benchmark: never run
    monkeypatch.setattr(run_all, "BENCH", tmp_path)

    assert run_all.main(["--skip", "broken"]) == 0
    out = capfd.readouterr().out
    assert "fast: ratio 0.42" in out
    assert "broken" not in out.split("==> summary")[1]

    assert run_all.main([]) == 1
    summary = capfd.readouterr().out.split("==> summary")[1]
    assert "broken       FAILED (3)" in summary
    assert "fast         ok" in summary
    assert "helper" not in summary
