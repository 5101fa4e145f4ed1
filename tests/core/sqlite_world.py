"""Seed the SQLite file of an embedded-mode process for tests/core/test_sqlite_concurrency.py.

Run as a script in that process's environment (DATABASE_URL unset, SMARTHOME_VAR_DIR set):
    python tests/core/sqlite_world.py <sandbox base url> <sandbox CA file> <client id> <client secret> <residents>
Prints one JSON line: the barrier's partner ref and id, and per resident an access token and a vehicle id.
"""

import datetime
import json
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))


def seed(base_url: str, ca_file: str, client_id: str, client_secret: str, residents: int) -> dict:
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, get_application_model, set_token_value

    from partners.models import Partner
    from partners.services import partner_credentials_rotate
    from tests import factories
    from tests.access.api.conftest import ALL_SCOPES

    partner = Partner.objects.create(name="Sandbox partner", slug="sandbox", api_base_url=base_url,
                                     server_ca_pem=Path(ca_file).read_text())
    partner_credentials_rotate(partner=partner, client_id=client_id, client_secret=client_secret)
    building = factories.building()
    barrier = factories.device(building_=building, partner_=partner, kind="barrier",
                               partner_device_ref=f"sqlite-gate-{secrets.token_hex(3)}")
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    application = get_application_model().objects.create(
        client_id="mobile-app-sqlite", name="Mobile app", client_type="public",
        authorization_grant_type="authorization-code", redirect_uris="ru.smarthome.app:/oauth2redirect",
        algorithm="",
    )
    people = []
    for _ in range(residents):
        resident = factories.resident(unit_=factories.unit(building_=building))
        factories.grant(resident_=resident, building_=building)
        vehicle = factories.vehicle(resident_=resident)
        raw = secrets.token_urlsafe(32)
        token = AccessToken(user=resident.user, application=application, scope=ALL_SCOPES,
                            expires=timezone.now() + datetime.timedelta(hours=1))
        set_token_value(token, raw)
        token.save()
        people.append({"token": raw, "vehicle_id": vehicle.pk})
    return {"barrier_id": barrier.pk, "barrier_ref": barrier.partner_device_ref, "residents": people}


if __name__ == "__main__":
    import django

    django.setup()
    base, ca, cid, secret, count = sys.argv[1:6]
    print(json.dumps(seed(base, ca, cid, secret, int(count))))
