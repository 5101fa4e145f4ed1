"""Fill the row keys and re-encrypt every encrypted value bound to its row (core.crypto.row_binding).

Not atomic: each batch commits on its own, so an interrupted run continues where it stopped when
`migrate` runs again (rows with a key and values already bound are skipped).
"""

from django.db import migrations

from core.crypto.row_binding import bind_rows_operation

TABLES = {
    'access_resident': ['full_name', 'phone', 'email'],
    'access_vehicle': ['plate'],
    'access_guestpass': ['plate'],
}


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('access', '0007_row_key_column'),
    ]

    operations = [
        migrations.RunPython(bind_rows_operation(TABLES), bind_rows_operation(TABLES, unbind=True)),
    ]
