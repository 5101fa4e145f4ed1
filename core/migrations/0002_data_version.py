from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0001_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name="DataVersion",
            fields=[
                ("scope", models.CharField(max_length=16, primary_key=True, serialize=False)),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
    ]
