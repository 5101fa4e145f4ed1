#!/usr/bin/env python
"""Collect the project's user-facing strings into the Russian .po files (`make makemessages`).

Runs Django's `makemessages -l ru` over our own code only - the apps (each into its own
<app>/locale/) and the project templates (into locale/, settings.LOCALE_PATHS) - never the
virtualenv, tests, benchmarks or local state. Without line numbers in the files, so a change
elsewhere in a module does not touch its .po. New strings arrive untranslated (and a changed one
as "fuzzy"): translate them; tests/core/test_translations.py fails until every one is.

    python scripts/makemessages.py [ROOT]   # ROOT: a copy of the project (the test's), default here
"""

import os
import subprocess
import sys
from pathlib import Path

IGNORE = [".venv", "var", "tests", "bench", "scripts", "staticfiles", "docs", "node_modules", ".git", "*.txt"]
LOCALE_DIRS = ["locale", "core/locale", "access/locale", "audit/locale", "consent/locale", "partners/locale",
               "identity/locale"]


def main(root: Path) -> int:
    for directory in LOCALE_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)  # makemessages writes only where one exists
    command = [sys.executable, "manage.py", "makemessages", "-l", "ru", "--no-obsolete", "--no-location",
               "-v", "0", *(f"--ignore={pattern}" for pattern in IGNORE)]
    return subprocess.run(command, cwd=root, env={**os.environ, "DJANGO_SETTINGS_MODULE": "smarthome.settings"},
                          check=False).returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent))
