"""Residents: registration, changes (suspension included) and erasure."""

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from access.models import ManagementCompany, Resident, ResidentSearchTerm
from access.search import resident_digests
from access.services.allowlist import allowlist_resident_changed, resident_credentials, resident_grant_building_ids
from access.services.auditing import audit_change, clean_save
from consent.services import subject_forget
from core.security.identifiers import pseudonymous_ref


def resident_search_index(resident: Resident) -> None:
    """Write the digests the admin finds the resident by (access.search), replacing the old ones."""
    digests = resident_digests(full_name=resident.full_name, phone=resident.phone, email=resident.email)
    resident.search_terms.exclude(digest__in=digests).delete()
    known = set(resident.search_terms.values_list("digest", flat=True))
    ResidentSearchTerm.objects.bulk_create(
        [ResidentSearchTerm(resident=resident, digest=digest) for digest in sorted(digests - known)]
    )


def _audit(resident: Resident, actor, reason: str) -> None:
    audit_change(actor=actor, object_type="resident", pk=resident.pk, reason=reason, company_id=resident.company_id,
                 object_ref=pseudonymous_ref("resident", resident.pk))


@transaction.atomic
def resident_create(
    *,
    company: ManagementCompany,
    full_name: str,
    phone: str = "",
    email: str = "",
    suspended: bool = False,
    user=None,
    username: str | None = None,
    password: str | None = None,
    actor=None,
) -> Resident:
    """Register a resident of `company`, with a new app user unless `user` is given.

    The Django user carries no personal data (no name, no e-mail: those columns are not
    encrypted); its username is `username` or a random "r-..." handle. Checks: model
    validation (lengths). Writes the admin's search digests. Records admin.change with a
    pseudonymous ref.
    """
    if user is None:
        User = get_user_model()
        user = User(username=username or f"r-{secrets.token_hex(6)}")
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean()
        user.save()
    resident = clean_save(Resident(user=user, company=company, full_name=full_name, phone=phone, email=email,
                                   suspended=suspended))
    resident_search_index(resident)
    _audit(resident, actor, "created")
    return resident


RESIDENT_FIELDS = ("full_name", "phone", "email", "suspended")


@transaction.atomic
def resident_update(*, resident: Resident, actor=None, **changes) -> Resident:
    """Change a resident's name, phone, e-mail or suspension. Records admin.change; a new name,
    phone or e-mail rewrites the admin's search digests; a change of suspension patches the
    partners' allowlists (access.services.allowlist)."""
    unknown = set(changes) - set(RESIDENT_FIELDS)
    if unknown:
        raise TypeError(f"resident_update() cannot change {', '.join(sorted(unknown))}")
    was_suspended = Resident.objects.select_for_update().values_list("suspended", flat=True).get(pk=resident.pk)
    suspension_changed = "suspended" in changes and changes["suspended"] != was_suspended
    for name, value in changes.items():
        setattr(resident, name, value)
    clean_save(resident)
    if {"full_name", "phone", "email"} & set(changes):
        resident_search_index(resident)
    _audit(resident, actor, "suspended" if changes.get("suspended") else "updated")
    if suspension_changed:
        allowlist_resident_changed(resident_id=resident.pk)
    return resident


@transaction.atomic
def resident_delete(*, resident: Resident, actor=None) -> None:
    """Erase a resident (the admin's delete): their row and, with it, their flats, grants, cars and
    plate tokens, guest passes and notifications; their app account and its OAuth2 tokens (unless
    it is also a staff account: then only the link goes). Before the rows go, in the same
    transaction: every open consent is revoked with reason "deleted" (face deletions queued to the
    partners, consent.subject_forget) and every site whose allowlist may list them gets a patch
    removing all their plate tokens and face subjects. Consents, deletion receipts and audit events
    stay: they are evidence and name the resident by id or pseudonymous ref only. Records
    admin.change "deleted"."""
    resident = Resident.objects.select_for_update().select_related("user").get(pk=resident.pk)
    resident_id, user = resident.pk, resident.user
    credentials = resident_credentials(resident_id=resident_id)
    sites = resident_grant_building_ids(resident_id=resident_id) | set(
        resident.residencies.values_list("unit__building_id", flat=True)
    )
    _audit(resident, actor, "deleted")
    resident.delete()
    # after the rows: each revocation's own allowlist patch then finds no site of theirs, and the one
    # patch below removes every credential captured above
    subject_forget(resident_id=resident_id, reason="deleted", actor=actor)
    allowlist_resident_changed(resident_id=resident_id, removed=credentials, building_ids=sites)
    if not user.is_staff:
        user.delete()
