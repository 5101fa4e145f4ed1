"""The decision caches learn what changed, not only that something did.

Migration 0005's triggers bumped one counter per scope at the commit of any write a decision
reads, so one grant suspended anywhere emptied every process's cache of every building. These
triggers record, at commit, the tags the write changed (core migration 0005's
`core_data_changes`; core.cache.versioned drops only the cached facts carrying one of them):

- `access`: the structure a decision stands on - devices (partner, ref, building), buildings
  (time zone, company), partner contracts and the buildings they cover;
- `r:<resident id>`: what is known about one resident - their suspension, residencies, grants
  (personal, or through a residency), cars, consents and face enrolments;
- `t:<token>`: what a credential names - a plate token (under each key in use), a guest pass's
  plate tokens, a face subject id;
- `tokens`: partners, their OAuth2 applications and certificate bindings, and a partner's
  access token updated or deleted (a resident's token changes nothing cached).

Constraint triggers DEFERRABLE INITIALLY DEFERRED, named zz_decision_data_changed as before (a
test makes them IMMEDIATE by that name): they run at commit, after the writer's own row locks,
and the change becomes visible exactly with the data. Device telemetry (online, last seen) and
other columns outside the lists below record nothing.
"""

import importlib

from django.db import migrations
from oauth2_provider.settings import oauth2_settings

TRIGGER = "zz_decision_data_changed"
RESIDENT = "'r:' || {row}.resident_id"
# table: (the UPDATE events that matter, the tags of a row `{row}` - OLD and/or NEW)
TABLES = {
    "access_device": ("UPDATE OF partner_id, partner_device_ref, building_id", ["'access'"]),
    "access_building": ("UPDATE OF timezone, company_id", ["'access'"]),
    "partners_partnercontract": ("UPDATE", ["'access'"]),
    "partners_partnercontract_buildings": ("UPDATE", ["'access'"]),
    "access_resident": ("UPDATE OF suspended", ["'r:' || {row}.id"]),
    "access_residency": ("UPDATE", [RESIDENT]),
    "access_accessgrant": ("UPDATE", [
        RESIDENT, "'r:' || (SELECT resident_id FROM access_residency WHERE id = {row}.residency_id)",
    ]),
    "access_vehicle": ("UPDATE OF resident_id", [RESIDENT]),
    "access_vehicleplatetoken": ("UPDATE", ["'t:' || {row}.token"]),
    # a guest pass names its plate under the partner's current key and, during a rotation's
    # overlap, its previous one (NULL otherwise: core_data_changes skips it)
    "access_guestpass": ("UPDATE", ["'t:' || {row}.plate_token", "'t:' || {row}.previous_plate_token"]),
    "consent_consent": ("UPDATE", [RESIDENT]),
    "consent_faceenrolment": ("UPDATE OF resident_id, partner_id, subject_id", [RESIDENT, "'t:' || {row}.subject_id"]),
    "partners_partner": ("UPDATE", ["'tokens'"]),
    "partners_partnerapplication": ("UPDATE", ["'tokens'"]),
    "partners_partnertokenbinding": ("UPDATE", ["'tokens'"]),
}
ACCESS_TOKENS = "oauth2_provider_accesstoken"  # deleted or updated only (a new token changes nothing cached)
PARTNER_TOKEN = ("CASE WHEN EXISTS (SELECT 1 FROM partners_partnerapplication WHERE application_id = "
                 "{row}.application_id) THEN 'tokens' END")

FUNCTION = """
CREATE OR REPLACE FUNCTION {table}_data_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM core_data_changes(ARRAY[{old}]);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM core_data_changes(ARRAY[{new}]);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def _function(table: str, tags: list[str]) -> str:
    return FUNCTION.format(table=table, old=", ".join(tag.format(row="OLD") for tag in tags),
                           new=", ".join(tag.format(row="NEW") for tag in tags))


def _trigger(table: str, events: str) -> str:
    return (f"CREATE CONSTRAINT TRIGGER {TRIGGER} AFTER {events} ON {table} DEFERRABLE INITIALLY DEFERRED "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_data_changed();")


def _by_scope():
    return importlib.import_module("access.migrations.0005_decision_data_version")


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    _by_scope().uninstall(apps, schema_editor)
    for table, (events, tags) in TABLES.items():
        schema_editor.execute(_function(table, tags))
        schema_editor.execute(_trigger(table, f"INSERT OR DELETE OR {events}"))
    schema_editor.execute(_function(ACCESS_TOKENS, [PARTNER_TOKEN]))
    schema_editor.execute(_trigger(ACCESS_TOKENS, "DELETE OR UPDATE"))
    schema_editor.execute("DELETE FROM core_dataversion WHERE scope IN ('access', 'tokens');")


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in [*TABLES, ACCESS_TOKENS]:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table};")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {table}_data_changed();")
    _by_scope().install(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0013_plate_token_key_version_required"),
        ("core", "0005_data_changes"),
        migrations.swappable_dependency(oauth2_settings.ACCESS_TOKEN_MODEL),
    ]

    operations = [
        migrations.RunPython(install, uninstall),
    ]
