"""Staff sign in with their directory account: django-auth-ldap, configured from IDENTITY_LDAP_*.

Active only when IDENTITY_LDAP_URI is set (it is then in AUTHENTICATION_BACKENDS before the
local accounts). At every login the directory decides: the user's groups map to our roles and
company memberships (identity.services.directory); a user in no mapped group is refused and
loses the roles and memberships it had. The admin's one-time code is still required after the
directory password.

A local account (break-glass) whose username equals a directory login is never taken over:
the directory answers only for users it created (`DirectoryAccount`). Resident sign-in pages
never consult the directory. No directory attribute (name, e-mail) is copied into Django.
"""

import ldap
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_auth_ldap.backend import LDAPBackend
from django_auth_ldap.config import (
    ActiveDirectoryGroupType,
    GroupOfNamesType,
    LDAPSearch,
    LDAPSettings,
    NestedActiveDirectoryGroupType,
    NestedGroupOfNamesType,
    PosixGroupType,
)

from identity import signin_audit
from identity.models import DirectoryAccount
from identity.services.directory import directory_user_sync

GROUP_TYPES = {
    "nested_ad": (NestedActiveDirectoryGroupType, "(objectClass=group)"),
    "ad": (ActiveDirectoryGroupType, "(objectClass=group)"),
    "nested_group_of_names": (NestedGroupOfNamesType, "(objectClass=groupOfNames)"),
    "group_of_names": (GroupOfNamesType, "(objectClass=groupOfNames)"),
    "posix": (PosixGroupType, "(objectClass=posixGroup)"),
}


def ldap_settings() -> LDAPSettings:
    """django-auth-ldap's settings object, built from our IDENTITY_LDAP_* settings."""
    group_type, group_filter = GROUP_TYPES[settings.IDENTITY_LDAP_GROUP_TYPE]
    timeout = settings.IDENTITY_LDAP_TIMEOUT_S
    options = {ldap.OPT_REFERRALS: 0, ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout}
    if settings.IDENTITY_LDAP_CA_FILE:
        options[ldap.OPT_X_TLS_CACERTFILE] = settings.IDENTITY_LDAP_CA_FILE
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0
    return LDAPSettings(prefix="IDENTITY_LDAP_UNUSED_", defaults={
        "SERVER_URI": settings.IDENTITY_LDAP_URI,
        "BIND_DN": settings.IDENTITY_LDAP_BIND_DN,
        "BIND_PASSWORD": settings.IDENTITY_LDAP_BIND_PASSWORD,
        "START_TLS": settings.IDENTITY_LDAP_START_TLS,
        "CONNECTION_OPTIONS": options,
        "USER_SEARCH": LDAPSearch(
            settings.IDENTITY_LDAP_USER_BASE, ldap.SCOPE_SUBTREE, settings.IDENTITY_LDAP_USER_FILTER
        ),
        "GROUP_SEARCH": LDAPSearch(settings.IDENTITY_LDAP_GROUP_BASE, ldap.SCOPE_SUBTREE, group_filter),
        "GROUP_TYPE": group_type(),
        "USER_ATTR_MAP": {},
        "ALWAYS_UPDATE_USER": True,
        "CACHE_TIMEOUT": 0,
        "FIND_GROUP_PERMS": False,
        "MIRROR_GROUPS": None,
    })


class DirectoryBackend(LDAPBackend):
    @property
    def settings(self):
        if self._settings is None:
            self._settings = ldap_settings()
        return self._settings

    @settings.setter
    def settings(self, value):
        self._settings = value

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.IDENTITY_LDAP_URI:
            return None
        if request is not None and request.path.startswith(reverse("resident-login")):
            return None  # residents never sign in with the staff directory
        self._settings = ldap_settings()  # the current configuration, read at each login
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_or_build_user(self, username, ldap_user):
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and not DirectoryAccount.objects.filter(user=user).exists():
            raise ldap_user.AuthenticationFailed("a local account has this username")
        return user, built

    def authenticate_ldap_user(self, ldap_user, password):
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        roles = directory_user_sync(user=user, dn=ldap_user.dn, group_dns=ldap_user.group_dns)
        if not roles:
            signin_audit.login_refused(request=ldap_user._request, method="ldap", cause="no_role", user=user)
            return None
        return user

    def get_user_model(self):
        return get_user_model()
