"""The resident login page, /accounts/login/ (the rest of /accounts/ is identity/urls.py)."""

from django.urls import path

from identity.views import login

urlpatterns = [
    path("", login.ResidentLoginView.as_view(), name="resident-login"),
]
