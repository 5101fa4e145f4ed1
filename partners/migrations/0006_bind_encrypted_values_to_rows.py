"""Fill the row keys and re-encrypt every partner secret bound to its row (core.crypto.row_binding).

Not atomic: each batch commits on its own, so an interrupted run continues where it stopped when
`migrate` runs again (rows with a key and values already bound are skipped).
"""

from django.db import migrations

from core.crypto.row_binding import bind_rows_operation

TABLES = {
    'partners_partnercredentials': [
        'client_secret', 'plate_token_key', 'subject_key', 'webhook_secret', 'outbound_webhook_secret',
    ],
}


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('partners', '0005_row_key_column'),
    ]

    operations = [
        migrations.RunPython(bind_rows_operation(TABLES), bind_rows_operation(TABLES, unbind=True)),
    ]
