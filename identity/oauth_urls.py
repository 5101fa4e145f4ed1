"""The OAuth2 protocol endpoints under /o/ of the public pool.

Only the protocol endpoints of django-oauth-toolkit: no self-service application management.
identity's subclasses of core.auth's views add the sign-in audit and the provider's acr rule.
smarthome/urls.py mounts them in the namespace `oauth2_provider`, as django-oauth-toolkit expects;
the partner pool mounts partner_oauth_urls.
"""

from django.urls import path

from core.auth.views import IntrospectTokenView
from identity.views import oauth

urlpatterns = [
    path("authorize/", oauth.AuthorizationView.as_view(), name="authorize"),
    path("token/", oauth.TokenView.as_view(), name="token"),
    path("revoke_token/", oauth.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", IntrospectTokenView.as_view(), name="introspect"),
]
