"""Forms of the portal's own pages."""

import uuid

from django import forms
from django.utils.translation import gettext_lazy as _

from access.reasons import StaffOpenReason


class StaffOpenForm(forms.Form):
    """Open a door or barrier for someone at it: the reason is required; `token` is a one-time key
    made when the page is shown, so the form sent twice opens once (access.services.opening)."""

    reason = forms.ChoiceField(label=_("Who is at the door"), choices=[("", "—"), *StaffOpenReason.choices])
    token = forms.RegexField(regex=r"^[0-9a-f]{32}$", widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {"token": uuid.uuid4().hex})
        super().__init__(*args, **kwargs)
