from django.contrib.auth import views as auth_views
from django.urls import include, path

from tests.oidc_provider import views

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="oidc_provider/login.html"), name="login"),
    path("_control/users", views.control_user),
    path("_control/fault", views.control_fault),
    path("_control/backchannel-logout", views.control_backchannel_logout),
]
