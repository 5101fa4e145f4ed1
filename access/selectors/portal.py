"""What the audit export form offers a staff user (settings.AUDIT_SCOPE_CHOICES): the buildings of
their management companies and the partners serving them - the audit app cannot know either."""

from access.models import Building
from access.selectors.dashboard import partners_serving
from core.portal.isolation import scope_to_companies
from core.security.tenancy import company_ids_for_user


def audit_scope_choices(user) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    companies = company_ids_for_user(user)
    buildings = scope_to_companies(Building.objects.select_related("company"), "company", companies)
    several = companies is None or len(companies) > 1
    building_choices = [(b.pk, f"{b.name} ({b.company.name})" if several else b.name) for b in buildings]
    company_ids = set(buildings.values_list("company_id", flat=True))
    partner_choices = [(p.pk, p.name) for p in partners_serving(company_ids=company_ids)]
    return building_choices, partner_choices
