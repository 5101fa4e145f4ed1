"""Reads of the access app, already scoped to the caller."""


def company_ids_for_user(user) -> set[int]:
    """Management companies a staff user belongs to (filled in by the domain model)."""
    return set()
