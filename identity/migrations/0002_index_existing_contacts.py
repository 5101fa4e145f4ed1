"""Index the phones and e-mails of residents that existed before the identity app."""

from django.db import migrations


def index_existing(apps, schema_editor):
    from identity.contacts import index_resident

    resident_model = apps.get_model("access", "Resident")
    index_model = apps.get_model("identity", "ContactIndex")
    for resident in resident_model.objects.only("pk", "phone", "email").iterator():
        index_resident(resident_id=resident.pk, phone=resident.phone, email=resident.email, index_model=index_model)


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0001_initial"),
        ("access", "0001_initial"),
    ]

    operations = [migrations.RunPython(index_existing, migrations.RunPython.noop)]
