"""Residents' sign-in pages under /accounts/ (the login page itself is `resident-login`)."""

from django.urls import path

from identity.views import invitations, login, oidc

app_name = "identity"

urlpatterns = [
    path("login/code/", login.login_otp, name="login-otp"),
    path("signed-in/", oidc.signed_in, name="signed-in"),
    path("oidc/login/", oidc.provider_login_start, name="oidc-start"),
    path("oidc/callback/", oidc.provider_callback, name="oidc-callback"),
    path("oidc/backchannel-logout/", oidc.backchannel_logout, name="oidc-backchannel-logout"),
    path("invitation/set-password/", invitations.invitation_set_password, name="invitation-set-password"),
    path("invitation/<str:token>/", invitations.invitation_open, name="invitation"),
    path("password/code-app/", invitations.totp_setup, name="totp-setup"),
    path("password/done/", invitations.password_set, name="password-set"),
    path("password/reset/", invitations.password_reset, name="password-reset"),
]
