"""Every row with encrypted values gets a random row key (nullable until 0008 has filled it)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('access', '0006_security_alert_resolution'),
    ]

    operations = [
        migrations.AddField(
            model_name=model_name,
            name='row_key',
            field=models.UUIDField(null=True, editable=False),
        )
        for model_name in ('resident', 'vehicle', 'guestpass')
    ]
