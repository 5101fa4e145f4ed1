"""The token endpoint of the partner pool: partners fetch their client-credentials token through
nginx's mTLS listener, which binds it to their certificate (RFC 8705)."""

from django.urls import path

from identity.views import oauth

urlpatterns = [
    path("token/", oauth.TokenView.as_view(), name="token"),
]
