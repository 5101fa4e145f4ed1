"""The smart-home integration service (Django project package)."""

from smarthome.celery import app as celery_app

__all__ = ["celery_app"]
