"""Reads of the partners app."""



from partners.models import Partner, PartnerContract, PartnerCredentials

WEBHOOK_SECRET_FIELDS = {"inbound": "webhook_secret", "outbound": "outbound_webhook_secret"}


def webhook_secrets(*, partner_id: int, direction: str, at=None) -> list[str]:
    """The partner's Standard Webhooks secrets in force: the current credentials' first, then those
    of credentials revoked less than WEBHOOK_PREVIOUS_SECRET_GRACE_S ago by a normal rotation (an
    emergency rotation leaves no grace), empty ones skipped. `direction`: "inbound" (the partner
    signs its events to us) or "outbound" (we sign ours to the partner)."""
    field = WEBHOOK_SECRET_FIELDS[direction]
    rows = PartnerCredentials.objects.secrets_in_use(partner_id=partner_id, at=at)[:3]
    return [getattr(row, field) for row in rows if getattr(row, field)]


def plate_keys_in_use(*, partner_ids, at=None) -> dict[int, list[tuple[int, bytes]]]:
    """{partner id: [(credentials version, plate-token key), ...]}: the keys whose plate tokens
    decisions accept at `at`, the current key first, then a previous one in its overlap
    (PartnerCredentialsQuerySet.plate_keys_accepted); partners without credentials are absent."""
    keys: dict[int, list[tuple[int, bytes]]] = {}
    for credentials in PartnerCredentials.objects.plate_keys_accepted(at).filter(partner_id__in=list(partner_ids)):
        keys.setdefault(credentials.partner_id, []).append((credentials.version, credentials.plate_token_key_bytes()))
    return keys


def current_credentials(*, partner: Partner | int) -> PartnerCredentials | None:
    """The partner's (object or id) current, not revoked credentials, or None."""
    return PartnerCredentials.objects.current().filter(partner=partner).first()


def contract_covering(*, partner_id: int, building_id: int, operation: str, at=None) -> PartnerContract | None:
    """An active contract of the partner that covers the building and allows `operation`.

    operation: "open" | "video" | "face" | "plate".
    """
    return (
        PartnerContract.objects.active(at)
        .filter(partner_id=partner_id, buildings__id=building_id, **{f"allows_{operation}": True})
        .first()
    )


def partners_covering_building_ids(*, building_ids, operation: str | None = None, at=None) -> dict[int, set[int]]:
    """{partner_id: {building ids it covers among `building_ids`}} under active contracts
    (optionally only contracts allowing `operation`), for usable partners only."""
    queryset = PartnerContract.objects.active(at).filter(
        buildings__id__in=list(building_ids), partner__active=True, partner__suspended_at__isnull=True
    )
    if operation:
        queryset = queryset.filter(**{f"allows_{operation}": True})
    result: dict[int, set[int]] = {}
    for partner_id, building_id in queryset.values_list("partner_id", "buildings__id"):
        result.setdefault(partner_id, set()).add(building_id)
    return result
