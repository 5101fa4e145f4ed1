"""docs/configuration.md's table and the environment variables the code reads are the same set.

Read means: an `env.<cast>("NAME", ...)` (or `env("NAME")`) call in smarthome/settings/*.py, or an
`os.environ.get("NAME")` / `os.environ["NAME"]` / `os.environ.setdefault("NAME", ...)` /
`os.getenv("NAME")` / `"NAME" in os.environ` anywhere in the project's own code (not tests,
benchmarks or migrations) - found with `ast`, not by running anything. Documented means: a row of
the table in docs/configuration.md whose first cell names the variable in backticks (one per row).
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
NOT_PROJECT_CODE = {".venv", "tests", "bench", "var", "staticfiles", "node_modules"}
NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")
# Variables of the platform itself, never set by an operator
NOT_SETTINGS = {"DJANGO_ALLOW_ASYNC_UNSAFE"}


def _literal(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _env_call(func) -> bool:
    """`env.str(...)`, `env.int(...)`, ... or `env(...)` (django-environ)."""
    if isinstance(func, ast.Name):
        return func.id == "env"
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env"


def _environ_call(func) -> bool:
    """`os.environ.get(...)`, `.setdefault(...)`, `.pop(...)` or `os.getenv(...)`."""
    if not isinstance(func, ast.Attribute):
        return False
    return func.attr == "getenv" or (func.attr in ("get", "setdefault", "pop") and _is_environ(func.value))


def _name_read(node, settings_module: bool) -> str | None:
    if isinstance(node, ast.Call) and node.args:
        if _environ_call(node.func) or (settings_module and _env_call(node.func)):
            return _literal(node.args[0])
    elif isinstance(node, ast.Subscript) and _is_environ(node.value):
        return _literal(node.slice)
    elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In) and _is_environ(node.comparators[0]):
        return _literal(node.left)
    return None


def names_read(path: Path, *, settings_module: bool) -> set[str]:
    found = {_name_read(node, settings_module) for node in ast.walk(ast.parse(path.read_text(), str(path)))}
    return {name for name in found if name and NAME.match(name)} - NOT_SETTINGS


def variables_read() -> dict[str, set[str]]:
    """Variable name -> the files that read it."""
    read: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in NOT_PROJECT_CODE or "migrations" in relative.parts:
            continue
        settings_module = relative.parts[:2] == ("smarthome", "settings")
        for name in names_read(path, settings_module=settings_module):
            read.setdefault(name, set()).add(str(relative))
    return read


def documented(page: str = "configuration.md") -> list[str]:
    rows = []
    for line in (ROOT / "docs" / page).read_text().splitlines():
        if not line.startswith("|") or line.startswith(("| variable", "|---")):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
        assert len(names) <= 1, f"one variable per row: {line}"
        rows.extend(names)
    return rows


def test_every_variable_the_code_reads_is_documented():
    missing = {name: sorted(files) for name, files in variables_read().items() if name not in documented()}
    assert not missing, f"add a row to docs/configuration.md for each of: {missing}"


def test_every_documented_variable_is_read_by_the_code():
    unread = sorted(set(documented()) - set(variables_read()))
    assert not unread, f"docs/configuration.md documents variables nothing reads: {unread}"


def test_each_variable_has_one_row():
    rows = documented()
    assert len(rows) == len(set(rows)), sorted({name for name in rows if rows.count(name) > 1})


def test_the_settings_named_in_the_issue_are_read_from_the_environment():
    settings_read = names_read(ROOT / "smarthome" / "settings" / "base.py", settings_module=True)
    assert {"PARTNER_DECISION_RATE", "ACCESS_DECISION_ALLOW_TTL_S", "ACCESS_DECISION_DENY_TTL_S",
            "WEBHOOK_PREVIOUS_SECRET_GRACE_S", "VERSIONED_CACHE", "ACCESS_ANOMALY"} <= settings_read


def test_no_other_page_keeps_its_own_table_of_settings():
    others = [path.name for path in (ROOT / "docs").glob("*.md")
              if path.name != "configuration.md" and "\n| variable |" in "\n" + path.read_text()]
    assert not others, f"point these pages at docs/configuration.md instead of a table of their own: {others}"
