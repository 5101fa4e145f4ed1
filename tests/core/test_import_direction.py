"""The import direction of docs/architecture.md holds in every module, imports inside functions too.

The project package (`smarthome/`) and the shared kernel (`core/`) import no domain app; a domain
app imports only the apps below it: audit <- partners <- consent <- access <- identity <- masterdata
(an arrow: "is imported by"). Lower apps react to higher ones through signals, registries and
settings, never by importing them.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["audit", "partners", "consent", "access", "identity", "masterdata"]
ALLOWED = {app: set(ORDER[:index]) for index, app in enumerate(ORDER)} | {"core": set(), "smarthome": set()}


def imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ORDER)


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # a migration may name another app's state; it runs in the migration graph's order
        wrong = imported_apps(path) - ALLOWED[package] - {package}
        if wrong:
            found.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    return found


@pytest.mark.parametrize("package", [*ALLOWED])
def test_no_module_imports_upward(package):
    assert violations(package) == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "upward.py"
    module.write_text("def f():\n    from access.models import Resident\n    import masterdata.api\n")
    assert imported_apps(module) == {"access", "masterdata"}
