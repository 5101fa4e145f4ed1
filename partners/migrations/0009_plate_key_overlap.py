"""A rotation's plate-key overlap: when key material was handed over, when a plate key was retired.

Keys issued before exports existed reached their partner some other way and are in service:
the current ones count as handed over (at their creation), so the first rotation after this
upgrade keeps them in an overlap instead of dropping them at once. Revoked versions' keys were
already unused: they count as retired at their revocation.
"""

from django.db import migrations, models
from django.db.models import F


def mark_existing(apps, schema_editor):
    credentials = apps.get_model("partners", "PartnerCredentials")
    credentials.objects.filter(revoked_at__isnull=True).update(handed_over_at=F("created_at"))
    credentials.objects.filter(revoked_at__isnull=False).update(plate_key_retired_at=F("revoked_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("partners", "0008_credentials_revoked_without_grace"),
    ]

    operations = [
        migrations.AddField(
            model_name="partnercredentials",
            name="handed_over_at",
            field=models.DateTimeField(blank=True, help_text="When its key material was last exported to the partner (encrypted)", null=True),
        ),
        migrations.AddField(
            model_name="partnercredentials",
            name="plate_key_retired_at",
            field=models.DateTimeField(blank=True, help_text="When decisions stopped accepting plate tokens under its key", null=True),
        ),
        migrations.RunPython(mark_existing, migrations.RunPython.noop),
    ]
