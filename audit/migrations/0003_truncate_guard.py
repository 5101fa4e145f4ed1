"""PostgreSQL: the audit tables also refuse TRUNCATE (a statement-level trigger).

Row triggers (0002) do not see TRUNCATE, which empties a table at once. The guard lets it through
only in a session where `audit.allow_truncate` is 'on': the test server sets that for Django's
flush between transactional tests (tests/infra.py); no deployment should. Like `allow_prune`,
this stops accidents and application bugs, not a database role bent on it - that role can set the
flag or drop the trigger; production should also REVOKE TRUNCATE from the application's role.
"""

from django.db import migrations

TABLES = ("audit_event", "audit_leaf", "audit_checkpoint", "audit_prune")

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_reject_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('audit.allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit log is append-only: TRUNCATE on % refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_truncate()"
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_reject_truncate()")


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]

    operations = [migrations.RunPython(install, uninstall)]
