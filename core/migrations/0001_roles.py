"""Staff roles as groups: property manager, compliance officer, security admin.

Permissions come from core.security.role_permissions; post_migrate re-syncs them after every
migrate, so models that other apps add later are covered too.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from core.security.role_permissions import sync_role_groups
from core.security.roles import ALL_ROLES


def create_roles(apps, schema_editor):
    using = schema_editor.connection.alias
    # Permissions are normally created after migrate; create those of the models known so far.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
        app_config.models_module = None
    sync_role_groups(apps=apps, using=using)


def remove_roles(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    group_model.objects.using(schema_editor.connection.alias).filter(name__in=ALL_ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
