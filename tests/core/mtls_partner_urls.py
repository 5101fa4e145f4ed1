"""The partner pool's URL map with the test-only whoami view (tests/core/mtls_urls.py)."""

from tests.core.mtls_urls import partner_urlpatterns as urlpatterns

__all__ = ["urlpatterns"]
