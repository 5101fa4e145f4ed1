"""django-auditlog: what the admin audit trail may show of encrypted fields (nothing).

auditlog's default mask keeps the second half of a value visible (the last digits of a phone);
for personal data encrypted at rest we record only that the field changed.

Rows written with `bulk_create` send no post_save, so auditlog's receiver never sees them:
`log_created` writes their "created" entries itself, the same ones the receiver would.
"""

from auditlog import get_logentry_model
from auditlog.cid import get_cid
from auditlog.context import auditlog_disabled, auditlog_value
from auditlog.diff import model_instance_diff
from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils.encoding import smart_str

MASK = "[encrypted]"


def mask_value(value: str) -> str:
    """Mask for every field registered in `mask_fields`: no characters, not even the length."""
    return MASK


def encrypted_field_names(model) -> list[str]:
    """Fields of `model` encrypted at rest (core.crypto fields carry `encrypted = True`)."""
    return [field.name for field in model._meta.concrete_fields if getattr(field, "encrypted", False)]


def register(model, **options) -> None:
    """Record every change of `model` in the admin audit trail, encrypted fields masked."""
    mask = sorted({*options.pop("mask_fields", ()), *encrypted_field_names(model)})
    if not auditlog.contains(model):
        auditlog.register(model, mask_fields=mask, **options)


def log_created(objects) -> int:
    """The admin history's "created" entry of each of `objects` (saved rows of one registered
    model, written with bulk_create): the changes auditlog records on a save (encrypted fields
    masked), the actor and address of auditlog's current context (the admin request's), one
    INSERT per thousand. Returns how many entries were written."""
    objects = list(objects)
    if not objects or not auditlog.contains(type(objects[0])) or auditlog_disabled.get():
        return 0
    LogEntry = get_logentry_model()
    content_type = ContentType.objects.get_for_model(type(objects[0]))
    context = auditlog_value.get({})
    actor = context.get("actor")
    actor = actor if isinstance(actor, get_user_model()) else None
    entries = [
        LogEntry(
            content_type=content_type, object_pk=str(obj.pk), object_id=obj.pk, object_repr=smart_str(obj),
            action=LogEntry.Action.CREATE, cid=get_cid(), actor=actor,
            actor_email=getattr(actor, "email", None) if actor else None,
            remote_addr=context.get("remote_addr"), remote_port=context.get("remote_port"),
            changes=model_instance_diff(None, obj, use_json_for_changes=settings.AUDITLOG_STORE_JSON_CHANGES),
        )
        for obj in objects
    ]
    LogEntry.objects.bulk_create(entries, batch_size=1000)
    return len(entries)
