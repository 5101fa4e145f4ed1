"""Every plate token names the key that made it (filled in by 0012); one per vehicle, partner and key."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0012_plate_token_key_version"),
    ]

    operations = [
        migrations.AlterField(
            model_name="vehicleplatetoken",
            name="key_version",
            field=models.PositiveIntegerField(help_text="Version of the partner's credentials whose key made it"),
        ),
        migrations.AddConstraint(
            model_name="vehicleplatetoken",
            constraint=models.UniqueConstraint(fields=("vehicle", "partner", "key_version"),
                                               name="plate_token_one_per_vehicle_partner_and_key"),
        ),
    ]
