"""OAuth2 scopes: each names a single action; which client may ask for which is decided here.

django-oauth-toolkit has no per-application scope field, so `ApplicationScopes` (the
SCOPES_BACKEND_CLASS) answers per client:
- the public mobile app (authorization code + PKCE): the resident scopes;
- service clients named in OAUTH_SERVICE_CLIENTS (e.g. tenant-core-app): the scopes listed there;
- clients recognised by one of OAUTH_SCOPE_RESOLVERS (e.g. partners bound to a Partner): theirs;
- anything else: no scope at all, so any request is refused with `invalid_scope`.
"""

from django.conf import settings
from django.utils.module_loading import import_string
from oauth2_provider.scopes import BaseScopes

# scope -> (English, Russian): shown on the consent screen in both languages.
RESIDENT_SCOPES = {
    "devices:read": ("See your doors, barriers and cameras", "Видеть ваши двери, шлагбаумы и камеры"),
    "doors:open": ("Open doors of your building", "Открывать двери вашего дома"),
    "barriers:open": ("Open parking barriers", "Открывать шлагбаумы парковки"),
    "video:view": ("Watch live video from intercoms", "Смотреть видео с домофонов"),
    "vehicles:write": ("Register and remove your cars", "Добавлять и удалять ваши автомобили"),
    "guests:write": ("Create and revoke guest passes", "Создавать и отзывать гостевые пропуска"),
    "consent:write": (
        "Give or revoke consent to biometric processing and enrol your face",
        "Давать и отзывать согласие на обработку биометрии, загружать фото лица",
    ),
    "history:read": ("Read your access history and notifications", "Смотреть историю доступа и уведомления"),
}
PARTNER_SCOPES = {
    "access:decide": ("Ask for access decisions", "Запрашивать решения о доступе"),
    "events:write": ("Send device events", "Отправлять события устройств"),
}
SERVICE_SCOPES = {
    "introspection": ("Introspect tokens", "Проверять токены"),
    "audit:export": ("Export the audit log", "Выгружать журнал аудита"),
    "masterdata:write": (
        "Write buildings, flats, residents and residencies (the developer's systems)",
        "Записывать дома, квартиры, жителей и проживание (системы застройщика)",
    ),
}
ALL_SCOPES = {**RESIDENT_SCOPES, **PARTNER_SCOPES, **SERVICE_SCOPES}
DEFAULT_RESIDENT_SCOPES = ["devices:read"]


def describe(scope: str) -> str:
    english, russian = ALL_SCOPES[scope]
    return f"{english} — {russian}"


def _is_resident_app(application) -> bool:
    return (
        application.client_type == application.CLIENT_PUBLIC
        and application.authorization_grant_type == application.GRANT_AUTHORIZATION_CODE
    )


def allowed_scopes_for(application) -> list[str]:
    """Every scope `application` may ever hold (empty: it may hold none)."""
    if application is None:
        return []
    if _is_resident_app(application):
        return list(RESIDENT_SCOPES)
    configured = settings.OAUTH_SERVICE_CLIENTS.get(application.client_id)
    if configured is not None:
        return [scope for scope in configured if scope in ALL_SCOPES]
    for path in settings.OAUTH_SCOPE_RESOLVERS:
        scopes = import_string(path)(application)
        if scopes:
            return [scope for scope in scopes if scope in ALL_SCOPES]
    return []


class ApplicationScopes(BaseScopes):
    def get_all_scopes(self):
        return {scope: describe(scope) for scope in ALL_SCOPES}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return allowed_scopes_for(application)

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        if application is not None and _is_resident_app(application):
            return DEFAULT_RESIDENT_SCOPES
        return allowed_scopes_for(application)
