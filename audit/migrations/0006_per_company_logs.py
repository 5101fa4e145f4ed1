"""One Merkle log per management company (plus the platform log), seals, signed checkpoints.

The single log's tables (audit_leaf, audit_checkpoint, audit_prune) stay untouched, as the
`Legacy*` models; the first seal after this migration moves their events into the new logs
and signs the link (audit.legacy). Events gain `origin_request_id` (the request that caused
a partner call).

On PostgreSQL:
- `audit_utc_text(timestamptz)`: the canonical time text; to_char is only STABLE because some
  patterns depend on the locale - this one does not, so the function is declared IMMUTABLE;
- `audit_event.leaf_v2`: a stored generated column, the event's v2 leaf hash (audit.canonical),
  computed by the database when the row is written, so a seal only reads hashes;
- the append-only and no-TRUNCATE triggers of migrations 0002/0003 on the new tables.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

NEW_TABLES = ("audit_log", "audit_seal", "audit_log_checkpoint", "audit_log_prune", "audit_log_link")

# audit.canonical.sql_leaf_hash("", generated=True) as of this migration (a test holds them equal)
LEAF_V2 = (
    r"""sha256('\x00'::bytea || decode(('["v2","' || coalesce(id::text, '') || '","' || """
    r"""audit_utc_text(occurred_at) || '","' || actor_kind::text || '","' || actor_ref::text || """
    r"""'","' || action::text || '","' || outcome::text || '","' || object_type::text || '","' || """
    r"""object_ref::text || '","' || coalesce(partner_id::text, '') || '","' || """
    r"""coalesce(company_id::text, '') || '","' || coalesce(building_id::text, '') || '","' || """
    r"""device_ref::text || '","' || reason::text || '","' || request_id::text || '","' || """
    r"""source_ip::text || '","' || coalesce(latency_ms::text, '') || '","' || """
    r"""coalesce(http_status::text, '') || '","' || origin_request_id::text || '"]'), 'escape'))"""
)

UTC_TEXT = """
CREATE OR REPLACE FUNCTION audit_utc_text(moment timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(UTC_TEXT, params=None)
    schema_editor.execute(
        f"ALTER TABLE audit_event ADD COLUMN leaf_v2 bytea GENERATED ALWAYS AS ({LEAF_V2}) STORED",
        params=None,
    )
    for table in NEW_TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_reject_change()"
        )
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_truncate()"
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in NEW_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    schema_editor.execute("ALTER TABLE audit_event DROP COLUMN IF EXISTS leaf_v2")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_utc_text(timestamptz)")


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_sign_in_actions")]

    operations = [
        migrations.RenameModel("AuditLeaf", "LegacyLeaf"),
        migrations.RenameModel("AuditCheckpoint", "LegacyCheckpoint"),
        migrations.RenameModel("AuditPrune", "LegacyPrune"),
        migrations.AlterField(
            model_name="legacyleaf",
            name="event",
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING,
                                       related_name="legacy_leaf", to="audit.auditevent"),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="origin_request_id",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.CheckConstraint(condition=models.Q(origin_request_id__regex="^[A-Za-z0-9:._-]{0,64}$"),
                                              name="audit_event_origin_request_id"),
        ),
        migrations.CreateModel(
            name="AuditLog",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=40, unique=True)),
                ("company_id", models.BigIntegerField(blank=True, null=True, unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "db_table": "audit_log",
                "ordering": ["id"],
                "constraints": [models.CheckConstraint(
                    condition=models.Q(models.Q(("company_id__isnull", True), ("name", "platform")),
                                       ("company_id__gte", 0), _connector="OR"),
                    name="audit_log_company_or_platform")],
            },
        ),
        migrations.CreateModel(
            name="AuditSeal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sealed_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("low_id", models.BigIntegerField()),
                ("high_id", models.BigIntegerField()),
                ("gaps", models.JSONField(blank=True, default=list)),
                ("late", models.JSONField(blank=True, default=list)),
                ("events", models.BigIntegerField(default=0)),
            ],
            options={
                "db_table": "audit_seal",
                "ordering": ["id"],
                "constraints": [models.CheckConstraint(condition=models.Q(high_id__gte=models.F("low_id")),
                                                       name="audit_seal_range")],
            },
        ),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("first_position", models.BigIntegerField()),
                ("tree_size", models.BigIntegerField()),
                ("root_hash", models.CharField(max_length=64)),
                ("signed_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=64)),
                ("signature", models.CharField(max_length=128)),
                ("frontier", models.JSONField(default=list)),
                ("leaf_hashes", models.BinaryField()),
                ("log", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="checkpoints",
                                          to="audit.auditlog")),
                ("seal", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="checkpoints",
                                           to="audit.auditseal")),
            ],
            options={
                "db_table": "audit_log_checkpoint",
                "ordering": ["log_id", "-tree_size"],
                "constraints": [
                    models.UniqueConstraint(fields=("log", "tree_size"), name="audit_log_checkpoint_log_size"),
                    models.UniqueConstraint(fields=("log", "seal"), name="audit_log_checkpoint_log_seal"),
                    models.CheckConstraint(
                        condition=models.Q(("tree_size__gt", models.F("first_position")), ("first_position__gte", 0)),
                        name="audit_log_checkpoint_range"),
                ],
            },
        ),
        migrations.CreateModel(
            name="AuditPrune",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("below_position", models.BigIntegerField()),
                ("cutoff", models.DateTimeField()),
                ("deleted", models.BigIntegerField()),
                ("pruned_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("log", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="prunes",
                                          to="audit.auditlog")),
            ],
            options={"db_table": "audit_log_prune"},
        ),
        migrations.CreateModel(
            name="AuditLogLink",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("statement", models.JSONField()),
                ("signed_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=64)),
                ("signature", models.CharField(max_length=128)),
                ("seal", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                           to="audit.auditseal")),
            ],
            options={"db_table": "audit_log_link"},
        ),
        migrations.RunPython(install, uninstall),
    ]
