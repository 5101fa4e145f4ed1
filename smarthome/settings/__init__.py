"""Default (development) settings; `smarthome.settings.production` for deployments."""

from smarthome.settings.base import *  # noqa: F403
