import core.crypto.fields
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('partners', '0006_bind_encrypted_values_to_rows'),
    ]

    operations = [
        migrations.AlterField(
            model_name='partnercredentials',
            name='row_key',
            field=core.crypto.fields.RowKeyField(help_text="Random key this row's encrypted values are bound to"),
        ),
    ]
