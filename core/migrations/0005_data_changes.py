"""The change log behind the process-local caches (core.cache.versioned) and the one function
every app's triggers record into it with.

`core_data_changes(tags)` records the tags a transaction changed under one batch number: the
first call of a batch bumps DataVersion `changes` (a row lock held to commit, so batches commit
in the order of their numbers) and remembers the number in transaction-local settings; later
calls of the same batch reuse it. A batch is the transaction's deferred triggers at commit, or
one statement when a test makes the triggers immediate (`txid@statement_timestamp`, as before).
NULL tags are skipped (nothing is recorded or bumped for none), so a trigger can pass
`'r:' || OLD.resident_id` for an optional column.
"""

import django.db.models.functions.datetime
from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION core_data_changes(change_tags text[]) RETURNS void AS $$
DECLARE
    batch text := txid_current()::text || '@' || statement_timestamp()::text;
    batch_seq bigint;
    change_tag text;
BEGIN
    change_tags := array_remove(change_tags, NULL);
    IF cardinality(change_tags) = 0 THEN
        RETURN;
    END IF;
    IF current_setting('smarthome.data_change_batch', true) = batch THEN
        batch_seq := current_setting('smarthome.data_change_seq')::bigint;
    ELSE
        INSERT INTO core_dataversion (scope, value) VALUES ('changes', 1)
            ON CONFLICT (scope) DO UPDATE SET value = core_dataversion.value + 1
            RETURNING value INTO batch_seq;
        PERFORM set_config('smarthome.data_change_batch', batch, true);
        PERFORM set_config('smarthome.data_change_seq', batch_seq::text, true);
    END IF;
    FOREACH change_tag IN ARRAY change_tags LOOP
        INSERT INTO core_datachange (seq, tag, changed_at) VALUES (batch_seq, change_tag, statement_timestamp())
            ON CONFLICT DO NOTHING;
    END LOOP;
END
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    Version = apps.get_model("core", "DataVersion")
    Version.objects.bulk_create([Version(scope="changes"), Version(scope="pruned")], ignore_conflicts=True)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS core_data_changes(text[]);")


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0004_credentials_at_rest"),
    ]

    operations = [
        migrations.CreateModel(
            name="DataChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField()),
                ("tag", models.CharField(max_length=100)),
                ("changed_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
            options={
                "indexes": [models.Index(fields=["changed_at"], name="data_change_changed_at")],
                "constraints": [models.UniqueConstraint(fields=("seq", "tag"), name="data_change_tag_once_per_batch")],
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
