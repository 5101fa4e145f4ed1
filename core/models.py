"""Models of the project core (no domain data)."""

from django.db import models


class DataVersion(models.Model):
    """A counter per scope that changes whenever the data behind a process-local cache changes.

    Bumped by PostgreSQL triggers deferred to commit (installed by the migrations of the apps
    that own the tables), so a new value becomes visible together with the data it stands for.
    `core.cache.versioned` keeps per-process copies only while the counter it read them
    under is unchanged. Scopes: `access` (what an access decision reads), `tokens` (partner
    OAuth2 tokens, applications and suspension).
    """

    scope = models.CharField(primary_key=True, max_length=16)
    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.scope}: {self.value}"
