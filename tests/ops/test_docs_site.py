"""The documentation site (`make docs`, called by .ci/run): it builds in strict mode, a broken link
fails that build, the nav lists every page, and the site loads nothing from another host."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(project / "mkdocs.yml"),
                           "-d", str(site)], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(DOCS, project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    return project


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = build(ROOT, site)
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_make_docs_builds_strictly_and_ci_runs_it():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndocs:", 1)[1].split("\n\n", 1)[0]
    assert "mkdocs build --strict" in recipe
    assert "make docs" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_site_has_every_page(site):
    for page in DOCS.rglob("*.md"):
        assert (site / page.relative_to(DOCS).with_suffix(".html")).exists(), page


@pytest.mark.parametrize("breakage", [
    ("operations.md", "\nSee [the runbook](no-such-page.md).\n", "no-such-page.md"),
    ("privacy.md", "\nSee [rights](#no-such-section).\n", "no-such-section"),
])
def test_a_broken_link_fails_the_build(tmp_path, breakage):
    page, text, named = breakage
    project = copy_project(tmp_path)
    assert build(project, tmp_path / "clean").returncode == 0  # the copy itself builds
    with (project / "docs" / page).open("a") as handle:
        handle.write(text)
    result = build(project, tmp_path / "broken")
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def nav_pages(entries) -> set[str]:
    pages = set()
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages |= nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_the_nav_lists_every_page():
    nav = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    files = {str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")}
    assert files - nav == set()
    assert nav - files == set()


def test_the_site_loads_nothing_from_another_host(site):
    for page in site.rglob("*.html"):
        html = page.read_text()
        loaded = re.findall(r'<(?:script|img|iframe)[^>]+src="(https?:)?//', html)
        loaded += re.findall(r'<link[^>]+href="(?:https?:)?//[^"]+"[^>]*rel="(?:stylesheet|preload|preconnect)"', html)
        loaded += re.findall(r'<link[^>]+rel="(?:stylesheet|preload|preconnect)"[^>]+href="(?:https?:)?//', html)
        assert not loaded, f"{page.name} loads {loaded}"
        assert "fonts.googleapis" not in html
        assert "fonts.gstatic" not in html


def test_the_readme_stays_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 60
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        assert (ROOT / link).exists(), link
