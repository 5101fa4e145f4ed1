"""Who may write master data through the integration API: the source systems' OAuth2 clients.

MASTERDATA_CLIENTS (JSON) names each client and what it may write:

    {"tenant-core-north": {"source": "tenant-core", "companies": ["TC-17", "TC-18"]}}

`source` is the namespace of the client's external ids (two clients of one source share it);
`companies` are the source's ids of the management companies the client may write - records of
any other company, or of rows that belong to another company, are refused. The client is an
internal service client (confidential, client credentials), never a partner's application: an
application bound to a partner gets no master-data scope even if it is named here.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from oauth2_provider.models import AbstractApplication

from masterdata.models import Entity, ExternalRef
from partners.models import PartnerApplication

SCOPE = "masterdata:write"
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class IntegrationClient:
    client_id: str
    source: str
    companies: frozenset[str]  # the source's ids of the companies this client may write

    def company_ids(self) -> set[int]:
        """Our ids of the client's companies that the source has already sent."""
        return set(
            ExternalRef.objects.filter(source=self.source, entity=Entity.COMPANY, external_id__in=self.companies,
                                       deleted=False).values_list("object_id", flat=True)
        )


def _configured(client_id: str) -> IntegrationClient | None:
    entry = settings.MASTERDATA_CLIENTS.get(client_id)
    if not isinstance(entry, dict):
        return None
    source, companies = entry.get("source"), entry.get("companies")
    if not isinstance(source, str) or not _SOURCE.match(source) or not isinstance(companies, list):
        return None
    return IntegrationClient(client_id=client_id, source=source,
                             companies=frozenset(str(company) for company in companies))


def _is_service_client(application) -> bool:
    return (
        application.client_type == AbstractApplication.CLIENT_CONFIDENTIAL
        and application.authorization_grant_type == AbstractApplication.GRANT_CLIENT_CREDENTIALS
        and not PartnerApplication.objects.filter(application=application).exists()
    )


def integration_client(application) -> IntegrationClient | None:
    """The configured integration client `application` is, or None (not configured, not a
    confidential client-credentials client, or a partner's application)."""
    if application is None:
        return None
    client = _configured(application.client_id)
    if client is None or not _is_service_client(application):
        return None
    return client


def client_scopes(application) -> list[str]:
    """OAUTH_SCOPE_RESOLVERS entry: `masterdata:write` for a configured integration client."""
    return [SCOPE] if integration_client(application) is not None else []
