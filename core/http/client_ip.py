"""The caller's IP address: the one rule every part of the service (and django-axes) uses.

A request that came over the trusted proxy hop (core/http/proxy.py: a TRUSTED_PROXY_CIDRS or
unix-socket peer presenting the proxy secret) is from the last X-Forwarded-For hop that is not
itself a trusted proxy; any other request is from its TCP peer (REMOTE_ADDR).
"""

from django.conf import settings

from core.http.networks import address_in
from core.http.proxy import via_trusted_proxy

__all__ = ["address_in", "client_ip"]


def client_ip(request) -> str:
    """REMOTE_ADDR, or the last untrusted hop of X-Forwarded-For when the request came over the proxy hop."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not via_trusted_proxy(request):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not address_in(hop, settings.TRUSTED_PROXY_CIDRS):
            return hop
    return remote
