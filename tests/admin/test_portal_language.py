"""The portal speaks Russian: every page a property manager reaches - lists, forms, object pages,
the portal's own pages - answers without a server error, as `<html lang="ru">`, with no text of
ours left in English."""

import pytest
from django.contrib import admin
from django.urls import reverse

from access.models import Device, Resident
from tests.admin.conftest import login_verified
from tests.translations import english_on, english_texts


def manager_urls(user, world) -> list[str]:
    urls = ["/admin/", "/admin/dashboard/", f"/admin/dashboard/{world['a'][Device].building_id}/",
            "/admin/consents/", "/admin/audit/auditevent/export/",
            f"/admin/access/resident/{world['a'][Resident].pk}/card/",
            f"/admin/access/device/{world['a'][Device].pk}/card/"]
    for model in admin.site._registry:
        opts = model._meta
        if not (user.has_perm(f"{opts.app_label}.view_{opts.model_name}")
                or user.has_perm(f"{opts.app_label}.change_{opts.model_name}")):
            continue
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if user.has_perm(f"{opts.app_label}.add_{opts.model_name}"):
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        row = world["a"].get(model)
        if row is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]))
    return urls


@pytest.mark.django_db
@pytest.mark.language("ru")
def test_the_managers_pages_show_no_english(client, world, users):
    login_verified(client, users.manager)
    forbidden = english_texts()
    assert len(forbidden) > 100  # the check reads the real catalogues
    urls = manager_urls(users.manager, world)
    assert len(urls) > 20
    leaks = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert '<html lang="ru"' in html, url
        if found := english_on(html, forbidden):
            leaks[url] = found
    assert leaks == {}
