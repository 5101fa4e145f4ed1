"""The property manager's pages beyond the model lists: a page per resident and per device, the
remote open for a courier or a visitor, consents, the dashboards' readable parts. Every page is an
admin view (core.portal.site: verified 2FA login), scoped to the caller's companies
(core.portal.isolation) and writing only through access.services."""
