"""What the stand-in provider knows beyond Django's user: claims, and the fault to inject next."""

from django.conf import settings
from django.db import models


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    claims = models.JSONField(default=dict)  # phone_number, phone_number_verified, email, acr, amr, ...

    def __str__(self):
        return f"profile {self.pk}"


class Fault(models.Model):
    """The one ID-token fault in force: "", wrong_nonce, wrong_aud, expired, unknown_key."""

    mode = models.CharField(max_length=32, blank=True)

    def __str__(self):
        return self.mode

    @classmethod
    def current(cls) -> str:
        row = cls.objects.first()
        return row.mode if row else ""
