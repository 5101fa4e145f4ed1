"""Admin forms of the audit app (the export and the reconciliation upload)."""

from django import forms

from audit.actions import Action, Outcome

MAX_PARTNER_LOG_BYTES = 50 * 1024 * 1024


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("jsonl", "JSON Lines")], initial="csv")
    since = forms.DateTimeField(required=False, label="From")
    until = forms.DateTimeField(required=False, label="To")
    building = forms.IntegerField(required=False, min_value=0)
    partner = forms.IntegerField(required=False, min_value=0)
    action = forms.ChoiceField(choices=[("", "any"), *Action.choices], required=False)
    outcome = forms.ChoiceField(choices=[("", "any"), *Outcome.choices], required=False)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            self.add_error("until", "must be after From")
        return data


class ReconcileForm(forms.Form):
    partner_log = forms.FileField(help_text="The partner's GET /v1/audit response, JSON Lines or CSV")
    partner = forms.IntegerField(required=False, min_value=0, help_text="Only our events of this partner id")
    since = forms.DateTimeField(label="From")
    until = forms.DateTimeField(label="To")
    skew_threshold_s = forms.FloatField(initial=5.0, min_value=0)
    csv = forms.BooleanField(required=False, label="Download the differences as CSV")

    def clean_partner_log(self):
        upload = self.cleaned_data["partner_log"]
        if upload.size > MAX_PARTNER_LOG_BYTES:
            raise forms.ValidationError("file too large")
        try:
            return upload.name, upload.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("the file must be UTF-8 text") from exc

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            self.add_error("until", "must be after From")
        return data
