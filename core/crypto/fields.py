"""Model fields whose values are encrypted with AES-256-GCM before they reach the database.

On the model the value is plain text; in the column it is the envelope described in
`core.crypto.keyring`, bound to "<db_table>.<column>". Encryption is randomised, so the
database cannot compare values: every lookup except `isnull` is refused with a FieldError
rather than silently matching nothing. Find rows by a keyed token column instead (see
VehiclePlateToken).
"""

from django import forms
from django.apps import apps
from django.core import validators
from django.core.exceptions import FieldError
from django.db import models

from core.crypto import keyring

ALLOWED_LOOKUPS = frozenset({"isnull"})


class EncryptedFieldLookupError(FieldError):
    """A query tried to compare an encrypted column."""


class EncryptedTextField(models.TextField):
    """Text encrypted at rest (AES-256-GCM, key id in the value, column-bound associated data)."""

    description = "Text encrypted at rest (AES-256-GCM)"
    encrypted = True  # rotate_encryption_keys discovers fields by this flag

    @property
    def associated_data(self) -> bytes:
        return f"{self.model._meta.db_table}.{self.column}".encode()

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return None
        return keyring.encrypt(str(value), aad=self.associated_data)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return keyring.decrypt(value, aad=self.associated_data)

    def get_lookup(self, lookup_name):
        if lookup_name not in ALLOWED_LOOKUPS:
            raise EncryptedFieldLookupError(
                f"{self.model.__name__}.{self.name} is encrypted at rest; "
                f"the database cannot compare it ('{lookup_name}' lookup refused)"
            )
        return super().get_lookup(lookup_name)

    def get_transform(self, lookup_name):
        raise EncryptedFieldLookupError(
            f"{self.model.__name__}.{self.name} is encrypted at rest; '{lookup_name}' refused"
        )


class EncryptedCharField(EncryptedTextField):
    """A short encrypted string: one-line form input and a max_length on the plain value."""

    def __init__(self, *args, max_length=None, **kwargs):
        super().__init__(*args, max_length=max_length, **kwargs)
        if max_length is not None:
            self.validators.append(validators.MaxLengthValidator(max_length))

    def formfield(self, **kwargs):
        defaults = {"form_class": forms.CharField, "max_length": self.max_length, "widget": forms.TextInput}
        defaults.update(kwargs)
        return models.Field.formfield(self, **defaults)


def encrypted_fields():
    """Every (model, field) pair in the project whose column is encrypted."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if getattr(field, "encrypted", False):
                yield model, field
