"""django-auditlog: what the admin audit trail may show of encrypted fields (nothing).

auditlog's default mask keeps the second half of a value visible (the last digits of a phone);
for personal data encrypted at rest we record only that the field changed.
"""

from auditlog.registry import auditlog

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
