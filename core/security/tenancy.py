"""Which management companies a staff user may see, without lower apps importing `access`.

`audit` and `partners` sit below `access` in the import order, yet their admin pages and
exports are scoped by management company. They ask here; the resolver named by
COMPANY_RESOLVER (set to the `access` selector) answers.
"""

from django.conf import settings
from django.utils.module_loading import import_string

ALL_COMPANIES = None  # returned for break-glass superusers


def company_ids_for_user(user) -> set[int] | None:
    """The ids of the companies `user` may see; None means every company (superuser)."""
    if user is None or not user.is_authenticated:
        return set()
    if user.is_superuser:
        return ALL_COMPANIES
    path = getattr(settings, "COMPANY_RESOLVER", "")
    if not path:
        return set()
    return set(import_string(path)(user))
