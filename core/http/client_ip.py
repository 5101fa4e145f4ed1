"""The caller's IP address, trusting X-Forwarded-For only from configured proxies."""

import functools
import ipaddress

from django.conf import settings


@functools.lru_cache(maxsize=1024)
def _network(cidr: str):
    return ipaddress.ip_network(cidr, strict=False)


def address_in(address: str, cidrs) -> bool:
    """Whether `address` lies in one of `cidrs` (False for anything that is not an IP address)."""
    return _address_in(address, tuple(cidrs))


@functools.lru_cache(maxsize=4096)  # a request asks about the same few addresses several times
def _address_in(address: str, cidrs: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in _network(cidr) for cidr in cidrs)


def client_ip(request) -> str:
    """REMOTE_ADDR, or the last untrusted hop of X-Forwarded-For when the peer is a trusted proxy."""
    remote = request.META.get("REMOTE_ADDR", "")
    if not address_in(remote, settings.TRUSTED_PROXY_CIDRS):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not address_in(hop, settings.TRUSTED_PROXY_CIDRS):
            return hop
    return remote
