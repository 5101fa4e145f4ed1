"""Plate tokens per plate-token key: a rotation's overlap keeps tokens under the old and the new key.

Existing tokens were made with their partner's current key: they get its credentials version.
Guest passes gain the token under the previous key (NULL outside an overlap). The column
becomes required in the next migration: the UPDATE here fires the deferred data-version
triggers (0005), and PostgreSQL alters no table with trigger events pending in the transaction.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def version_existing_tokens(apps, schema_editor):
    tokens = apps.get_model("access", "VehiclePlateToken")
    credentials = apps.get_model("partners", "PartnerCredentials")
    current = credentials.objects.filter(partner_id=OuterRef("partner_id"), revoked_at__isnull=True)
    tokens.objects.update(key_version=Subquery(current.values("version")[:1]))
    tokens.objects.filter(key_version__isnull=True).delete()  # no current key: a token nobody can match


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0011_resident_search_index"),
        ("partners", "0009_plate_key_overlap"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="vehicleplatetoken",
            name="plate_token_one_per_vehicle_and_partner",
        ),
        migrations.AddField(
            model_name="vehicleplatetoken",
            name="key_version",
            field=models.PositiveIntegerField(null=True, help_text="Version of the partner's credentials whose key made it"),
        ),
        migrations.AddField(
            model_name="guestpass",
            name="previous_plate_token",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.RunPython(version_existing_tokens, migrations.RunPython.noop),
    ]
