"""Admin forms of the audit app (the export and the reconciliation upload)."""

import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.actions import Action, Outcome

MAX_PARTNER_LOG_BYTES = 50 * 1024 * 1024


class DateInput(forms.DateInput):
    """The browser's own date picker (no script): `<input type="date">` with an ISO value."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


def day_start(day: datetime.date) -> datetime.datetime:
    """Midnight at the start of `day` in the current time zone (the portal's, PORTAL_TIME_ZONE)."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


class ExportForm(forms.Form):
    """Which events to export: whole days in the portal's time zone (From and To inclusive), and
    optionally one building and one partner - offered from the caller's own companies only
    (`buildings`, `partners`: (id, label) pairs the view gets from settings.AUDIT_SCOPE_CHOICES)."""

    format = forms.ChoiceField(label=_("File format"), choices=[("csv", "CSV"), ("jsonl", "JSON Lines")],
                               initial="csv")
    since = forms.DateField(required=False, label=_("From"), widget=DateInput(),
                            help_text=_("First day of the period (inclusive)"))
    until = forms.DateField(required=False, label=_("To"), widget=DateInput(),
                            help_text=_("Last day of the period (inclusive)"))
    building = forms.TypedChoiceField(label=_("Building"), required=False, coerce=int, empty_value=None)
    partner = forms.TypedChoiceField(label=_("Partner"), required=False, coerce=int, empty_value=None)
    action = forms.ChoiceField(label=_("Action"), choices=[("", _("any")), *Action.choices], required=False)
    outcome = forms.ChoiceField(label=_("Outcome"), choices=[("", _("any")), *Outcome.choices], required=False)

    def __init__(self, *args, buildings=(), partners=(), today=None, **kwargs):
        super().__init__(*args, **kwargs)
        today = today or timezone.localdate()
        self.fields["since"].initial = today.replace(day=1)
        self.fields["until"].initial = today
        self.fields["building"].choices = [("", _("all buildings")), *buildings]
        self.fields["partner"].choices = [("", _("all partners")), *partners]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", _("must not be before From"))
        return data

    def period(self) -> tuple[datetime.datetime | None, datetime.datetime | None]:
        """The cleaned days as the export's [since, until) instants."""
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        return (day_start(since) if since else None,
                day_start(until + datetime.timedelta(days=1)) if until else None)


class ReconcileForm(forms.Form):
    partner_log = forms.FileField(label=_("Partner's log"),
                                  help_text=_("The partner's GET /v1/audit response, JSON Lines or CSV"))
    partner = forms.IntegerField(label=_("Partner id"), required=False, min_value=0,
                                 help_text=_("Only our events of this partner id"))
    since = forms.DateTimeField(label=_("From"))
    until = forms.DateTimeField(label=_("To"))
    skew_threshold_s = forms.FloatField(label=_("Clock skew threshold, s"), initial=5.0, min_value=0)
    csv = forms.BooleanField(required=False, label=_("Download the differences as CSV"))

    def clean_partner_log(self):
        upload = self.cleaned_data["partner_log"]
        if upload.size > MAX_PARTNER_LOG_BYTES:
            raise forms.ValidationError(_("file too large"))
        try:
            return upload.name, upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError(_("the file must be UTF-8 text")) from exc

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            self.add_error("until", _("must be after From"))
        return data
