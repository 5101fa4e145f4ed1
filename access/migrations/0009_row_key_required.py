import core.crypto.fields
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('access', '0008_bind_encrypted_values_to_rows'),
    ]

    operations = [
        migrations.AlterField(
            model_name=model_name,
            name='row_key',
            field=core.crypto.fields.RowKeyField(help_text="Random key this row's encrypted values are bound to"),
        )
        for model_name in ('resident', 'vehicle', 'guestpass')
    ]
