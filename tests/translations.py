"""The translations the suite runs with: every .po of the project compiled to its .mo (only those
older than their .po), as `make install` does with `manage.py compilemessages` - so running
pytest directly never uses stale or missing translations. Plain msgfmt: no Django needed, so it
runs before anything is translated (tests/conftest.py calls it when it loads)."""

import re
import subprocess
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", "var", "node_modules", ".git"}


def po_files() -> list[Path]:
    return sorted(path for path in ROOT.glob("**/locale/*/LC_MESSAGES/*.po")
                  if not SKIP.intersection(path.relative_to(ROOT).parts))


def compile_translations() -> None:
    compiled = False
    for po in po_files():
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True)
        compiled = True
    if compiled:
        # A catalogue Django loaded before (while the settings loaded) would keep the old texts.
        from django.utils.translation.reloader import translation_file_changed

        translation_file_changed(sender=None, file_path=Path("compiled.mo"))


def english_texts() -> set[str]:
    """Our msgids of at least two words whose Russian differs: none may appear on a Russian page."""
    texts = set()
    for path in po_files():
        for msgid, msgstr in re.findall(r'^msgid "(.+)"\nmsgstr "(.*)"$', path.read_text(), flags=re.M):
            plain = msgid.replace('\\"', '"')
            if " " in plain and "%(" not in plain and "<" not in plain and msgstr and msgstr != msgid:
                texts.add(plain)
    return texts


def visible_text(html: str) -> str:
    """The text a reader sees on a page (no markup, scripts, styles or the window title)."""
    html = re.sub(r"<(script|style|title)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def english_on(html: str, forbidden: set[str]) -> list[str]:
    """The English texts of ours (`english_texts()`) a page shows."""
    text = visible_text(html)
    return sorted(phrase for phrase in forbidden if phrase in text)
