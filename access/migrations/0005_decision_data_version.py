"""The PostgreSQL triggers that bump smarthome.DataVersion when data a decision reads changes.

The triggers are constraint triggers DEFERRABLE INITIALLY DEFERRED: they run at commit, so
the counter's row lock is taken last and held only while committing (no lock-order deadlock
with the writer's other rows), and the new value is visible exactly when the data is. One bump
per scope and firing batch - all of a transaction's rows at its commit, or one statement's rows
when a test makes the triggers immediate (a transaction-local setting remembers it). On other databases
nothing is installed and the versioned caches stay off (core.cache.versioned).
"""

from django.db import migrations
from oauth2_provider.settings import oauth2_settings

SCOPED_TABLES = {
    "access": [
        ("access_device", "UPDATE OF partner_id, partner_device_ref, building_id"),
        ("access_building", "UPDATE OF timezone, company_id"),
        ("access_resident", "UPDATE OF suspended"),
        ("access_residency", "UPDATE"),
        ("access_accessgrant", "UPDATE"),
        ("access_vehicle", "UPDATE OF resident_id"),
        ("access_vehicleplatetoken", "UPDATE"),
        ("access_guestpass", "UPDATE"),
        ("consent_consent", "UPDATE"),
        ("consent_faceenrolment", "UPDATE OF resident_id, partner_id, subject_id"),
        ("partners_partnercontract", "UPDATE"),
        ("partners_partnercontract_buildings", "UPDATE"),
    ],
    "tokens": [
        ("partners_partner", "UPDATE"),
        ("partners_partnerapplication", "UPDATE"),
        ("partners_partnertokenbinding", "UPDATE"),
    ],
}

FUNCTION = """
CREATE OR REPLACE FUNCTION access_decision_data_changed() RETURNS trigger AS $$
DECLARE
    flag text := 'smarthome.data_changed_' || TG_ARGV[0];
    batch text := txid_current()::text || '@' || statement_timestamp()::text;
BEGIN
    IF current_setting(flag, true) = batch THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'oauth2_provider_accesstoken' THEN
        IF NOT EXISTS (SELECT 1 FROM partners_partnerapplication WHERE application_id = OLD.application_id) THEN
            RETURN NULL;  -- a resident's token: partner lookups are not affected
        END IF;
    END IF;
    INSERT INTO core_dataversion (scope, value) VALUES (TG_ARGV[0], 1)
        ON CONFLICT (scope) DO UPDATE SET value = core_dataversion.value + 1;
    PERFORM set_config(flag, batch, true);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""


def _trigger(table: str, events: str, scope: str) -> str:
    return (
        f"CREATE CONSTRAINT TRIGGER zz_decision_data_changed AFTER INSERT OR DELETE OR {events} ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_decision_data_changed('{scope}');"
    )


def install(apps, schema_editor):
    Version = apps.get_model("core", "DataVersion")
    Version.objects.bulk_create([Version(scope=scope) for scope in SCOPED_TABLES], ignore_conflicts=True)
    if schema_editor.connection.vendor != "postgresql":
        return
    statements = [FUNCTION]
    for scope, tables in SCOPED_TABLES.items():
        statements += [_trigger(table, events, scope) for table, events in tables]
    # a partner's token revoked or expired early (inserting a new token changes nothing cached)
    statements.append(
        "CREATE CONSTRAINT TRIGGER zz_decision_data_changed AFTER DELETE OR UPDATE ON oauth2_provider_accesstoken "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION access_decision_data_changed('tokens');"
    )
    for statement in statements:
        schema_editor.execute(statement)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    tables = [table for scoped in SCOPED_TABLES.values() for table, _ in scoped] + ["oauth2_provider_accesstoken"]
    for table in tables:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS zz_decision_data_changed ON {table};")
    schema_editor.execute("DROP FUNCTION IF EXISTS access_decision_data_changed();")


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0004_partner_anomalies"),
        ("consent", "0001_consent_biometrics"),
        ("partners", "0003_partner_api"),
        ("core", "0002_data_version"),
        migrations.swappable_dependency(oauth2_settings.ACCESS_TOKEN_MODEL),
    ]

    operations = [
        migrations.RunPython(install, uninstall),
    ]
