"""The object a portal page is about, looked up the way the admin looks it up."""

from django.core.exceptions import PermissionDenied
from django.http import Http404


def viewable_object(model_admin, request, object_id):
    """The row `object_id` of the admin's company-scoped queryset: another company's row (or none)
    is a 404, a row the caller may not view a 403."""
    obj = model_admin.get_object(request, object_id)
    if obj is None:
        raise Http404(f"No such {model_admin.opts.model_name}.")
    if not model_admin.has_view_permission(request, obj):
        raise PermissionDenied
    return obj
