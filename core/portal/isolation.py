"""Company isolation for the admin: one mixin every company-bound ModelAdmin and inline uses.

A staff user sees the rows of the management companies `core.security.tenancy` gives them (a
break-glass superuser sees all). The mixin scopes, from one declaration per admin
(`company_path`, the ORM path from the model to its ManagementCompany):

- the changelist and every object view: a foreign or unknown id on a change, delete or history
  URL is a 404, never a redirect that would confirm the row exists;
- foreign-key and many-to-many choices in forms and inlines: the choices of a related model come
  from that model's own (scoped) admin, or from `choice_paths` when the related model has none;
- the autocomplete endpoint, which asks the related model's admin for its queryset;
- list filters: a filter over a relation offers only the related rows present in the scoped
  list, so foreign companies, buildings or partners never appear as choices;
- bulk actions, which Django runs over the (scoped) changelist queryset.
"""

from django.contrib import admin
from django.contrib.admin.exceptions import DisallowedModelAdminToField
from django.contrib.admin.options import TO_FIELD_VAR
from django.contrib.admin.utils import get_fields_from_path, unquote
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Q
from django.http import Http404

from core.portal.labels import ChoiceLabelsMixin
from core.security.roles import has_role
from core.security.tenancy import company_ids_for_user

_CACHE_ATTR = "_admin_company_ids"


def request_company_ids(request) -> set[int] | None:
    """The caller's company ids, looked up once per request (None = every company)."""
    if not hasattr(request, _CACHE_ATTR):
        setattr(request, _CACHE_ATTR, company_ids_for_user(request.user))
    return getattr(request, _CACHE_ATTR)


def path_is_multivalued(model, path: str) -> bool:
    """True when following `path` from `model` crosses a to-many relation (rows could repeat)."""
    opts = model._meta
    for part in path.split("__"):
        field = opts.get_field(part)
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation:
            break
        opts = field.related_model._meta
    return False


def scope_to_companies(queryset, path: str | tuple[str, ...], ids: set[int] | None):
    """Rows of `queryset` whose company (reached through `path`) is in `ids`; all for None.

    A tuple of paths means "any of them", for rows that reach their company one of several
    ways (a grant targets a building or a single device).
    """
    if ids is None:
        return queryset
    if not ids:
        return queryset.none()
    paths = (path,) if isinstance(path, str) else tuple(path)
    condition = Q()
    for one in paths:
        condition |= Q(**{f"{one}__in": ids})
    if any(path_is_multivalued(queryset.model, one) for one in paths):
        # A subquery keeps the rows unique without .distinct(), which bulk delete refuses.
        return queryset.filter(pk__in=queryset.model._base_manager.filter(condition).values("pk"))
    return queryset.filter(condition)


class ObjectNotFoundMixin:
    """Object URLs of a ModelAdmin (change, delete, history) answer 404 for an id its queryset does
    not hold - another company's row or one that does not exist alike - instead of Django's
    redirect to the admin home, which would confirm that the row exists."""

    def _object_or_404(self, request, object_id):
        to_field = request.POST.get(TO_FIELD_VAR, request.GET.get(TO_FIELD_VAR))
        if to_field and not self.to_field_allowed(request, to_field):
            # Checked first, so a lookup by an arbitrary column cannot serve as an oracle.
            raise DisallowedModelAdminToField(f"The field {to_field} cannot be referenced.")
        try:
            obj = self.get_object(request, unquote(object_id), to_field)
        except (ValidationError, ValueError):
            obj = None
        if obj is None:
            raise Http404("No such object.")
        return obj

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._object_or_404(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._object_or_404(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)


class CompanyScopedAdminMixin(ObjectNotFoundMixin):
    """Scope a ModelAdmin or InlineModelAdmin to the caller's management companies.

    company_path: ORM path from this model to ManagementCompany, e.g. "company" for Building,
        "building__company" for Device, "id" for ManagementCompany itself; a tuple of paths
        when a row reaches its company one of several ways (any of them counts).
    choice_paths: {field name: path from the related model to ManagementCompany} for relations
        whose model has no scoped admin of its own.
    unscoped_roles: roles that see every row of this model (e.g. the security admin for
        partner organisations, which belong to no single company).
    """

    company_path: str | tuple[str, ...] = ""
    choice_paths: dict[str, str | tuple[str, ...]] = {}
    unscoped_roles: tuple[str, ...] = ()

    # --- the rows -----------------------------------------------------------------------------
    def company_ids(self, request) -> set[int] | None:
        if any(has_role(request.user, role) for role in self.unscoped_roles):
            return None
        return request_company_ids(request)

    def scope_queryset(self, queryset, request):
        if not self.company_path:
            raise TypeError(f"{type(self).__name__} must set company_path")
        return scope_to_companies(queryset, self.company_path, self.company_ids(request))

    def get_queryset(self, request):
        return self.scope_queryset(super().get_queryset(request), request)

    # --- form choices (plain selects, autocomplete widgets and inlines alike) -----------------
    def get_field_queryset(self, db, db_field, request):
        related_model = db_field.remote_field.model
        if db_field.name in self.choice_paths:
            queryset = related_model._default_manager.using(db)
            return scope_to_companies(queryset, self.choice_paths[db_field.name], request_company_ids(request))
        related_admin = self.admin_site._registry.get(related_model)
        if isinstance(related_admin, CompanyScopedAdminMixin):
            return related_admin.get_queryset(request).using(db)
        return super().get_field_queryset(db, db_field, request)

    # --- list filters -------------------------------------------------------------------------
    def get_list_filter(self, request):
        return [self._scoped_filter(entry) for entry in super().get_list_filter(request)]

    def _scoped_filter(self, entry):
        if not isinstance(entry, str):
            return entry  # (field, FilterClass) or a SimpleListFilter: chosen deliberately
        try:
            field = get_fields_from_path(self.model, entry)[-1]
        except (FieldDoesNotExist, admin.utils.NotRelationField):
            return entry
        if field.is_relation:
            return (entry, admin.RelatedOnlyFieldListFilter)
        return entry


class CompanyScopedModelAdmin(ChoiceLabelsMixin, CompanyScopedAdminMixin, admin.ModelAdmin):
    """A ModelAdmin scoped by management company (see CompanyScopedAdminMixin), its foreign-key
    choices named by human labels (core.portal.labels)."""


class CompanyScopedTabularInline(ChoiceLabelsMixin, CompanyScopedAdminMixin, admin.TabularInline):
    """An inline scoped by management company (see CompanyScopedAdminMixin)."""
