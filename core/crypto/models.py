"""The base of every model that declares an encrypted field.

The one rule for an encrypted field: the model inherits `EncryptedModel`. It adds `row_key`, a
random UUID generated when the instance is constructed (so it is known before the INSERT, unlike
an auto-increment primary key), unique and never edited; every encrypted value of the row is
bound to it (core.crypto.fields). `manage.py check` refuses a model with an encrypted field and
no row key (crypto.E001).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from core.crypto.fields import RowKeyField


class EncryptedModel(models.Model):
    row_key = RowKeyField(_("row key"), help_text=_("Random key this row's encrypted values are bound to"))

    class Meta:
        abstract = True
