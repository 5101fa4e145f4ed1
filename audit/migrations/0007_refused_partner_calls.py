"""Counters of partner calls refused before any view ran (audit.refusals)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_per_company_logs")]

    operations = [
        migrations.CreateModel(
            name="AuditRefusal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("minute", models.DateTimeField()),
                ("source", models.CharField(max_length=64)),
                ("reason", models.CharField(max_length=32)),
                ("partner_id", models.BigIntegerField(blank=True, null=True)),
                ("source_ip", models.CharField(blank=True, max_length=45)),
                ("count", models.BigIntegerField(default=0)),
                ("last_at", models.DateTimeField()),
            ],
            options={
                "db_table": "audit_refusal",
                "ordering": ["-minute"],
                "constraints": [
                    models.UniqueConstraint(fields=("minute", "source", "reason"), name="audit_refusal_key"),
                    models.CheckConstraint(condition=models.Q(reason__regex="^[a-z0-9_.]{0,64}$"),
                                           name="audit_refusal_reason"),
                    models.CheckConstraint(condition=models.Q(source_ip__regex="^[0-9A-Fa-f:.]{0,45}$"),
                                           name="audit_refusal_source_ip"),
                ],
            },
        ),
    ]
