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
import re
import subprocess
import sys
from pathlib import Path

IGNORE = [".venv", "var", "tests", "bench", "scripts", "staticfiles", "docs", "node_modules", ".git", "*.txt"]
IGNORED_DIRS = {".venv", "var", "tests", "node_modules", ".git"}
LOCALE_DIRS = ["locale", "core/locale", "access/locale", "audit/locale", "consent/locale", "partners/locale",
               "identity/locale", "masterdata/locale"]


BILINGUAL = re.compile(r"""{%\s*bilingual\s+"((?:[^"\\]|\\.)*)"\s*%}""")


def bilingual_strings(root: Path) -> list[str]:
    """The texts of `{% bilingual "..." %}` (identity/templatetags/bilingual.py) in the templates:
    makemessages only knows Django's own tags, so these are handed to it as gettext_noop calls."""
    found = set()
    for template in sorted(root.glob("*/templates/**/*.html")):
        if not IGNORED_DIRS.intersection(template.relative_to(root).parts):
            found.update(BILINGUAL.findall(template.read_text()))
    return sorted(found)


def main(root: Path) -> int:
    for directory in LOCALE_DIRS:
        (root / directory).mkdir(parents=True, exist_ok=True)  # makemessages writes only where one exists
    listing = root / "identity" / "bilingual_texts_for_makemessages.py"
    listing.write_text("from django.utils.translation import gettext_noop\n\n" + "".join(
        f'gettext_noop("{text}")\n' for text in bilingual_strings(root)))
    command = [sys.executable, "manage.py", "makemessages", "-l", "ru", "--no-obsolete", "--no-location",
               "-v", "0", *(f"--ignore={pattern}" for pattern in IGNORE)]
    try:
        return subprocess.run(command, cwd=root, env={**os.environ, "DJANGO_SETTINGS_MODULE": "smarthome.settings"},
                              check=False).returncode
    finally:
        listing.unlink()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent))
