"""Model fields whose values are encrypted with AES-256-GCM before they reach the database.

On the model the value is plain text; in the column it is the envelope described in
`core.crypto.keyring`, bound to its row: the associated data is
``"<db_table>.<column>@<row key>"``, where the row key is the random UUID in the row's own
`row_key` column (`RowKeyField`, set when the instance is constructed, so it is known before the
INSERT, unlike an auto-increment primary key). A ciphertext copied into another column, another
table or another row of the same column does not decrypt (DecryptionError).

The one rule: a model that declares an encrypted field inherits `core.crypto.models.EncryptedModel`
(which adds `row_key`); `manage.py check` refuses one that does not (crypto.E001).

How the row key reaches the field: writes encrypt in `pre_save`, which sees the instance. Reads
select ``CAST(row_key AS text) || '|' || <column>`` from the same table alias (`RowBoundCol`), so
`from_db_value` gets both - for model instances, `values()`, `values_list()` and joins alike. A
plain value with no instance (`QuerySet.update(phone=...)`, `bulk_update`) is refused with
EncryptedFieldWriteError rather than written unbound.

Encryption is randomised, so the database cannot compare values: every lookup except `isnull` is
refused with a FieldError rather than silently matching nothing. Find rows by a keyed token
column instead (see VehiclePlateToken).
"""

import uuid

from django import forms
from django.apps import apps
from django.core import checks, validators
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import models
from django.db.models.expressions import Col
from django.utils.functional import cached_property

from core.crypto import keyring

ALLOWED_LOOKUPS = frozenset({"isnull"})
ROW_KEY_FIELD = "row_key"
ROW_KEY_SEPARATOR = "|"


class EncryptedFieldLookupError(FieldError):
    """A query tried to compare an encrypted column."""


class EncryptedFieldWriteError(FieldError):
    """A plain value was to be written with no row to bind it to (update(), bulk_update())."""


def row_associated_data(table: str, column: str, row_key) -> bytes:
    """The associated data of a value of `table.column` in the row whose `row_key` is given
    (a UUID, or its text with or without dashes)."""
    key = row_key if isinstance(row_key, uuid.UUID) else uuid.UUID(str(row_key))
    return f"{table}.{column}@{key.hex}".encode()


def column_associated_data(table: str, column: str) -> bytes:
    """The associated data of the first format, bound to the column only (row_binding migrates it)."""
    return f"{table}.{column}".encode()


class _Sealed(str):
    """An envelope `pre_save` produced for its row: `get_prep_value` passes it through."""


class _SchemaDefault(str):
    """The field's default as `get_default()` hands it out. On an instance it is just the text; the
    schema editor, which fills the rows a new column finds with one value and has no row to bind
    it to, gets a column-bound envelope of it (`bind_values_to_rows` then binds those rows)."""


class RowKeyField(models.UUIDField):
    """The random UUID a row's encrypted values are bound to: generated when the instance is
    constructed, unique, never edited. Declared once, by `core.crypto.models.EncryptedModel`."""

    description = "Random key the row's encrypted values are bound to"

    def __init__(self, *args, **kwargs):
        kwargs.update(default=uuid.uuid4, editable=False, unique=True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        for fixed in ("default", "editable", "unique"):
            kwargs.pop(fixed, None)
        return name, path, args, kwargs


class RowBoundCol(Col):
    """A selected encrypted column comes with its row's key: ``CAST(row_key AS text) || '|' || col``
    (NULL stays NULL). Elsewhere (WHERE ... IS NULL) it is the plain column."""

    def select_format(self, compiler, sql, params):
        row_key_column = self.target.model._meta.get_field(ROW_KEY_FIELD).column
        quote = compiler.quote_name_unless_alias
        key_sql = f"{quote(self.alias)}.{quote(row_key_column)}" if self.alias else quote(row_key_column)
        return f"(CAST({key_sql} AS text) || '{ROW_KEY_SEPARATOR}' || {sql})", params


class EncryptedTextField(models.TextField):
    """Text encrypted at rest (AES-256-GCM, key id in the value, row-bound associated data)."""

    description = "Text encrypted at rest (AES-256-GCM)"
    encrypted = True  # rotate_encryption_keys discovers fields by this flag

    def associated_data_for(self, row_key) -> bytes:
        return row_associated_data(self.model._meta.db_table, self.column, row_key)

    # --- writes: bound to the instance's row key

    def pre_save(self, model_instance, add):
        value = super().pre_save(model_instance, add)
        if value is None:
            return None
        row_key = getattr(model_instance, ROW_KEY_FIELD, None)
        if row_key is None:
            raise EncryptedFieldWriteError(
                f"{self.model.__name__}.{self.name} is encrypted at rest and bound to its row, "
                f"but the instance has no {ROW_KEY_FIELD} (inherit core.crypto.models.EncryptedModel)"
            )
        return _Sealed(keyring.encrypt(str(value), aad=self.associated_data_for(row_key)))

    def get_default(self):
        value = super().get_default()
        return _SchemaDefault(value) if isinstance(value, str) else value

    def get_prep_value(self, value):
        if value is None or isinstance(value, _Sealed):
            return None if value is None else str(value)
        if isinstance(value, _SchemaDefault):
            table = self.model._meta.db_table
            return keyring.encrypt(str(value), aad=column_associated_data(table, self.column))
        raise EncryptedFieldWriteError(
            f"{self.model.__name__}.{self.name} is encrypted at rest and bound to its row: write it "
            "through the instance (save(), create(), bulk_create()), not update() or bulk_update()"
        )

    # --- reads: the select carries the row key

    def get_col(self, alias, output_field=None):
        if output_field is not None and output_field != self:
            return super().get_col(alias, output_field)
        if alias == self.model._meta.db_table:
            return self.cached_col
        return RowBoundCol(alias, self)

    @cached_property
    def cached_col(self):
        return RowBoundCol(self.model._meta.db_table, self)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        row_key, separator, envelope = value.partition(ROW_KEY_SEPARATOR)
        if not separator:
            raise keyring.DecryptionError(
                f"{self.model._meta.db_table}.{self.column} was read without its row key "
                "(raw SQL or an expression over the column): refusing to decrypt it unbound"
            )
        return keyring.decrypt(envelope, aad=self.associated_data_for(row_key))

    # --- no comparisons in the database

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

    # --- the declaration rule

    def check(self, **kwargs):
        return [*super().check(**kwargs), *self._check_row_key()]

    def _check_row_key(self):
        model = getattr(self, "model", None)
        if model is None or model._meta.abstract:
            return []
        try:
            row_key = model._meta.get_field(ROW_KEY_FIELD)
        except FieldDoesNotExist:
            row_key = None
        if isinstance(row_key, RowKeyField):
            return []
        return [
            checks.Error(
                f"{model._meta.label} declares the encrypted field '{self.name}' but has no row key",
                hint="Inherit core.crypto.models.EncryptedModel: it adds the `row_key` column every "
                "encrypted value of the row is bound to.",
                obj=self,
                id="crypto.E001",
            )
        ]


class EncryptedCharField(EncryptedTextField):
    """A short encrypted string: one-line form input and a max_length on the plain value."""

    def __init__(self, *args, max_length=None, **kwargs):
        super().__init__(*args, max_length=max_length, **kwargs)
        if max_length is not None:
            self.validators.append(validators.MaxLengthValidator(max_length))

    def formfield(self, **kwargs):
        widget = kwargs.get("widget")
        widget_class = widget if isinstance(widget, type) or widget is None else type(widget)
        if widget_class is not None and issubclass(widget_class, forms.Textarea):
            # Form defaults keyed by TextField (the admin's text area) reach this field too, as it is
            # a TextField underneath: a name, phone or plate is one line (vTextField: the admin's width).
            kwargs["widget"] = forms.TextInput(attrs={"class": "vTextField"})
        defaults = {"form_class": forms.CharField, "max_length": self.max_length, "widget": forms.TextInput}
        defaults.update(kwargs)
        return models.Field.formfield(self, **defaults)


def encrypted_fields():
    """Every (model, field) pair in the project whose column is encrypted."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if getattr(field, "encrypted", False):
                yield model, field
