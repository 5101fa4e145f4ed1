"""Russian is the service's language: every user-facing string of our code has a Russian
translation, the portal's pages carry no English text, and problem documents speak the language
the caller asks for (Russian by default) while their machine codes never change."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.utils import translation
from django.utils.functional import Promise
from rest_framework.test import APIClient

from tests.translations import ROOT, po_files

OUR_APPS = ("core", "audit", "partners", "consent", "access", "identity", "masterdata")
# Labels that read the same in Russian (codes, abbreviations, names).
SAME_IN_RUSSIAN = {"id", "sid", "t0", "SMS", "e-mail", "dn", "x5t s256", "%(device)s (%(building)s)",
                   "%(resident)s, %(flat)s", "E-mail"}


def selected(path: Path, *options: str) -> list[str]:
    """The msgids of a .po file's entries that msgattrib selects with `options` (header left out)."""
    out = subprocess.run(["msgattrib", *options, "--no-obsolete", str(path)], capture_output=True, text=True,
                         check=True).stdout
    entries = re.findall(r'^msgid ((?:".*"\n)+)', out + "\n", flags=re.M)
    texts = ["".join(re.findall(r'"(.*)"', entry)) for entry in entries]
    return [text for text in texts if text]


@pytest.mark.slow
def test_every_string_of_our_code_has_a_russian_translation(tmp_path):
    """makemessages over a copy of the project (our apps and templates; never third-party code):
    nothing new, untranslated or fuzzy - a string someone wrapped for translation without
    translating it fails here (`make makemessages`, then translate it)."""
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "var", "tests", "artifacts", "*.mo", "__pycache__",
                                                  "staticfiles"))
    result = subprocess.run([sys.executable, "scripts/makemessages.py", str(copy)], cwd=copy, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    found = sorted(copy.glob("**/locale/ru/LC_MESSAGES/django.po"))
    assert {p.relative_to(copy) for p in found} == {p.relative_to(ROOT) for p in po_files()}
    problems = {}
    for path in found:
        missing = selected(path, "--untranslated") + selected(path, "--only-fuzzy")
        if missing:
            problems[str(path.relative_to(copy))] = missing
    assert problems == {}


def test_every_model_and_field_of_our_apps_has_a_russian_label():
    """verbose names (apps, models and fields), help texts and choice labels are translatable and translated."""
    untranslated = []
    for app in OUR_APPS:
        config = apps.get_app_config(app)
        with translation.override("en"):
            english = str(config.verbose_name)
        with translation.override("ru"):
            if not isinstance(config.verbose_name, Promise) or str(config.verbose_name) == english:
                untranslated.append(f"{app} (the admin's section): {english!r}")
        for model in config.get_models():
            labels = [("model", model._meta.verbose_name), ("model plural", model._meta.verbose_name_plural)]
            for field in model._meta.get_fields():
                if field.auto_created or not hasattr(field, "verbose_name"):
                    continue
                labels.append((field.name, field.verbose_name))
                if field.help_text:
                    labels.append((f"{field.name} help", field.help_text))
                labels += [(f"{field.name} choice", label) for _value, label in (field.choices or [])
                           if isinstance(label, str | Promise)]
            for where, label in labels:
                with translation.override("en"):
                    english = str(label)
                with translation.override("ru"):
                    russian = str(label)
                if not isinstance(label, Promise) or (russian == english and english not in SAME_IN_RUSSIAN):
                    untranslated.append(f"{model._meta.label}.{where}: {english!r}")
    assert untranslated == []


# --- problem documents ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.language("ru")
@pytest.mark.parametrize(("header", "title"), [
    ({}, "Не выполнен вход"), ({"HTTP_ACCEPT_LANGUAGE": "ru-RU,ru;q=0.9"}, "Не выполнен вход"),
    ({"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.8"}, "Unauthorized"),
])
def test_problem_documents_speak_the_callers_language(header, title):
    response = APIClient().get("/api/v1/devices", **header)
    assert response.status_code == 401
    body = response.json()
    assert body["title"] == title
    assert body["type"] == "/problems/not-authenticated"  # the machine code never changes
    assert body["status"] == 401
    assert response["Content-Language"] == ("en" if "en-US" in header.get("HTTP_ACCEPT_LANGUAGE", "") else "ru")


@pytest.mark.django_db
@pytest.mark.language("ru")
def test_validation_problems_keep_their_codes_in_russian():
    response = APIClient().get("/api/v1/devices?x=\x01", HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code in (400, 401)
    body = response.json()
    assert re.fullmatch(r"/problems/[a-z-]+", body["type"])
    assert re.search("[а-яА-Я]", body["title"])
    for error in body.get("errors", []):
        assert re.fullmatch(r"[a-z_]+", error["code"])


@pytest.mark.django_db
@pytest.mark.language("ru")
@pytest.mark.parametrize(("language", "title"), [(None, "Не выполнен вход"), ("en", "Unauthorized"),
                                                 ("ru", "Не выполнен вход")])
def test_the_partner_api_negotiates_its_problem_language(language, title):
    """The partner pool has none of the browser middleware; its problem documents still follow
    Accept-Language (core.http.language). The partner API is served by the partner pool only."""
    from tests.pools import partner_client

    headers = {"HTTP_ACCEPT_LANGUAGE": language} if language else {}
    response = partner_client().post("/partner/v1/access-decisions", data="{}", content_type="application/json",
                                     **headers)
    assert response.status_code == 401
    assert response.json()["title"] == title
    assert response.json()["type"] == "/problems/partner-unauthenticated"  # the machine code never changes


def test_english_titles_are_the_http_reason_phrases():
    from http import HTTPStatus

    from core.http.problems import TITLES

    with translation.override("en"):
        assert {status: str(title) for status, title in TITLES.items()} == {
            status: HTTPStatus(status).phrase for status in TITLES}


# --- the residents' pages and the language switch ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.language("ru")
@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/password/reset/", "/accounts/invitation/x/",
                                  "/account/login/"])
def test_the_sign_in_pages_speak_russian_by_default(client, path):
    """The staff sign-in is in Russian; the residents' pages are bilingual (Russian first, the
    English beside it), never English alone."""
    from tests.translations import english_on, english_only_on, english_texts

    response = client.get(path, follow=True)
    assert response.status_code < 500, path
    html = response.content.decode()
    assert '<html lang="ru"' in html, path
    assert re.search("[а-яА-Я]{4,}", html), path
    if path.startswith("/accounts/"):
        assert english_only_on(html) == [], path
    else:
        assert english_on(html, english_texts()) == [], path


@pytest.mark.django_db
@pytest.mark.language("ru")
def test_the_language_switch_turns_the_pages_english_and_back(client):
    switched = client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})
    assert switched.status_code == 302
    assert '<html lang="en"' in client.get("/accounts/login/").content.decode()
    client.post("/i18n/setlang/", {"language": "ru", "next": "/accounts/login/"})
    assert '<html lang="ru"' in client.get("/accounts/login/").content.decode()
