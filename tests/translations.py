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


def russian_of() -> dict[str, str]:
    """{English: Russian} of our msgids of at least two words whose Russian differs."""
    texts = {}
    for path in po_files():
        unwrapped = subprocess.run(["msgcat", "--no-wrap", str(path)], capture_output=True, text=True,
                                   check=True).stdout
        for msgid, msgstr in re.findall(r'^msgid "(.+)"\nmsgstr "(.*)"$', unwrapped, flags=re.M):
            plain = msgid.replace('\\"', '"')
            if " " in plain and "%(" not in plain and "<" not in plain and msgstr and msgstr != msgid:
                texts[plain] = msgstr.replace('\\"', '"')
    return texts


def english_texts() -> set[str]:
    """Our English texts that may not appear on a Russian page."""
    return set(russian_of())


def visible_text(html: str) -> str:
    """The text a reader sees on a page (no markup, scripts, styles or the window title)."""
    html = re.sub(r"<(script|style|title)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def english_on(html: str, forbidden: set[str]) -> list[str]:
    """The English texts of ours (`english_texts()`) a page shows."""
    text = visible_text(html)
    return sorted(phrase for phrase in forbidden if phrase in text)


def english_only_on(html: str) -> list[str]:
    """The English texts of ours a bilingual page (Russian · English) shows without their Russian."""
    text = visible_text(html)
    texts = russian_of()
    shown = [english for english in texts if english in text]
    whole = [english for english in shown if not any(english != longer and english in longer for longer in shown)]
    return sorted(english for english in whole if texts[english].lower() not in text.lower())
