"""The security lint CI runs (`make lint`, called by .ci/run) passes and really scans the code."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_commands() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in recipe.splitlines()[1:] if line.startswith("\t")]


def test_make_lint_runs_bandit_and_it_finds_nothing_of_high_severity():
    bandit = next(command for command in lint_commands() if "bandit" in command)
    args = bandit.replace("$(BIN)", str(ROOT / ".venv" / "bin")).split()
    assert "--severity-level" in args
    clean = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_bandit_with_the_projects_settings_does_catch_a_high_severity_finding(tmp_path):
    """The gate is not blind: the same command on a module that shells out with user input fails."""
    bandit = next(command for command in lint_commands() if "bandit" in command)
    args = bandit.replace("$(BIN)", str(ROOT / ".venv" / "bin")).split()
    (tmp_path / "careless.py").write_text("import subprocess\n\ndef run(cmd):\n    subprocess.call(cmd, shell=True)\n")
    args[args.index("-r") + 1] = str(tmp_path)
    caught = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert caught.returncode == 1
    assert re.search(r"B602", caught.stdout)
