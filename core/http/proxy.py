"""The hop from the TLS terminator to the service, and which headers are believed over it.

nginx terminates TLS and tells the service who the client is: `X-Forwarded-For` (its peer's
address), `X-Forwarded-Proto`, and on the partner listener `X-Client-Cert` / `X-Client-Verify`
(the verified client certificate). Anyone who can reach the service's port can write those
headers as well - on a shared host, any local process over loopback TCP. So they are believed
only when both hold:

- the peer is a proxy: its address is in TRUSTED_PROXY_CIDRS, or the request came over a unix
  socket (gunicorn leaves REMOTE_ADDR empty there; the socket's file permissions decide who
  may connect), and
- the request carries `X-Proxy-Auth` equal to PROXY_AUTH_SECRET, a per-deployment secret that
  nginx adds to every request it forwards, compared in constant time.

`TrustedProxyMiddleware` (first in MIDDLEWARE, so in every pool that uses the project's
middleware) decides once per request. It always removes `X-Proxy-Auth`, and when the hop is not
trusted it removes every forwarded identity header, so nothing below it - the client address,
the client certificate, `request.is_secure()`, auditlog, axes - can read a forged one.
"""

import hmac

from django.conf import settings

from core.http.networks import address_in

PROXY_AUTH_HEADER = "X-Proxy-Auth"
PROXY_AUTH_META = "HTTP_X_PROXY_AUTH"
# Headers through which a proxy speaks for the client; only a trusted hop may set them.
FORWARDED_IDENTITY_META = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_X_CLIENT_CERT",
    "HTTP_X_CLIENT_VERIFY",
)
_TRUSTED = "smarthome.trusted_proxy_hop"  # WSGI environ key set by the middleware


def peer_may_be_proxy(meta) -> bool:
    """Whether the connection's peer is one the proxy may use: a trusted address or a unix socket."""
    remote = meta.get("REMOTE_ADDR", "")
    return remote == "" or address_in(remote, settings.TRUSTED_PROXY_CIDRS)


def hop_is_trusted(meta) -> bool:
    """A proxy peer presenting PROXY_AUTH_SECRET (constant-time comparison); never without a secret."""
    secret = settings.PROXY_AUTH_SECRET
    if not secret or not peer_may_be_proxy(meta):
        return False
    presented = meta.get(PROXY_AUTH_META, "")
    return hmac.compare_digest(presented.encode("latin-1", "replace"), secret.encode())


def via_trusted_proxy(request) -> bool:
    """Whether TrustedProxyMiddleware found this request to come over the trusted proxy hop."""
    return request.META.get(_TRUSTED) is True


class TrustedProxyMiddleware:
    """Believes forwarded identity headers from the authenticated proxy hop only; strips them otherwise."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        trusted = hop_is_trusted(meta)
        meta[_TRUSTED] = trusted
        meta.pop(PROXY_AUTH_META, None)
        if not trusted:
            for name in FORWARDED_IDENTITY_META:
                meta.pop(name, None)
        return self.get_response(request)
