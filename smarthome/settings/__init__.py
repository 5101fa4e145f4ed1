"""Default (development) settings; `smarthome.settings.production` for deployments."""

from django.core.exceptions import ImproperlyConfigured

from smarthome.settings.base import *  # noqa: F403
from smarthome.settings.base import PRODUCTION

if PRODUCTION:
    raise ImproperlyConfigured(
        "SMARTHOME_ENV=production with the development settings: "
        "use DJANGO_SETTINGS_MODULE=smarthome.settings.production"
    )
