"""django-auditlog: what the admin audit trail may show of encrypted fields (nothing).

auditlog's default mask keeps the second half of a value visible (the last digits of a phone);
for personal data encrypted at rest we record only that the field changed.

Rows written with `bulk_create` send no post_save, so auditlog's receiver never sees them:
`log_created` writes their "created" entries itself, the same ones the receiver would.
"""

from auditlog import get_logentry_model
from auditlog.cid import get_cid
from auditlog.context import auditlog_disabled, auditlog_value
from auditlog.diff import get_field_value, get_fields_in_model, get_mask_function
from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import pre_save
from django.utils.encoding import smart_str

from core.copy_insert import copy_values

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
    masked), the actor and address of auditlog's current context (the admin request's), in one
    COPY. Returns how many entries were written."""
    objects = list(objects)
    if not objects or not auditlog.contains(type(objects[0])) or auditlog_disabled.get():
        return 0
    LogEntry = get_logentry_model()
    content_type = ContentType.objects.get_for_model(type(objects[0]))
    context = _actor_context()
    actor = context.get("actor")
    actor = actor if isinstance(actor, get_user_model()) else None
    changes = _creation_changes(objects)
    shared = [content_type.pk, LogEntry.Action.CREATE, get_cid(), actor.pk if actor else None,
              getattr(actor, "email", None) if actor else None, context.get("remote_addr"), context.get("remote_port")]
    return copy_values(
        LogEntry,
        fields=["object_pk", "object_id", "object_repr", "changes", "content_type_id", "action", "cid", "actor_id",
                "actor_email", "remote_addr", "remote_port"],
        rows=([str(obj.pk), obj.pk, smart_str(obj), change, *shared]
              for obj, change in zip(objects, changes, strict=True)),
    )


def _actor_context() -> dict:
    """auditlog's context of the current `set_actor` block (its middleware's, in a request), or {}:
    the context variable outlives the block, whose end only disconnects the LogEntry pre_save
    receiver that would apply it - so the context counts only while that receiver is connected."""
    context = auditlog_value.get(None) or {}
    uid = context.get("signal_duid")
    if uid is None or not any(lookup_key[0] == uid for lookup_key, *_ in pre_save.receivers):
        return {}
    return context


def _creation_changes(objects: list) -> list[dict | None]:
    """What `auditlog.diff.model_instance_diff(None, obj)` answers for each new object (every
    tracked field from its empty value to the object's, masked fields masked), with the model's
    fields and mask looked up once instead of per object."""
    as_json = settings.AUDITLOG_STORE_JSON_CHANGES
    model = type(objects[0])
    options = auditlog.get_model_fields(model)
    fields = get_fields_in_model(objects[0])
    if options["include_fields"]:
        fields = [f for f in fields if f.name in options["include_fields"]]
    fields = [f for f in fields if f.name not in options["exclude_fields"]]
    masked = set(options["mask_fields"])
    mask = get_mask_function(options.get("mask_callable")) if masked else None
    empty = None if as_json else "None"  # get_field_value of no object
    result = []
    for obj in objects:
        diff = {}
        for f in fields:
            value = get_field_value(obj, f, as_json)
            if value == empty:
                continue
            if f.name in masked:
                diff[f.name] = (mask(smart_str(empty)), mask(smart_str(value)))
            elif as_json:
                diff[f.name] = (empty, value if isinstance(value, (type(None), bool, int, float, str, list, tuple,
                                                                     dict, set)) else smart_str(value))
            else:
                diff[f.name] = (empty, smart_str(value))
        result.append(diff or None)
    return result
