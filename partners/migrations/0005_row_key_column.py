"""Credentials rows get a random row key (nullable until 0006 has filled it)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('partners', '0004_outbound_webhook_secret'),
    ]

    operations = [
        migrations.AddField(
            model_name='partnercredentials',
            name='row_key',
            field=models.UUIDField(null=True, editable=False),
        ),
    ]
