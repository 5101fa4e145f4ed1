"""The client certificate a TLS terminator verified, as the service sees it.

gunicorn never hands the client certificate to the application, so nginx terminates TLS for
the partner API with `ssl_verify_client on` and forwards the verified certificate in
`X-Client-Cert` ($ssl_client_escaped_cert) with `X-Client-Verify` ($ssl_client_verify). Those
headers are believed only when the TCP peer is one of TRUSTED_PROXY_CIDRS; from anyone else
they are discarded, so a caller cannot claim a certificate by sending a header.
"""

import base64
import functools
import hashlib
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings

from core.http.client_ip import address_in

CERT_HEADER = "HTTP_X_CLIENT_CERT"
VERIFY_HEADER = "HTTP_X_CLIENT_VERIFY"


@dataclass(frozen=True)
class ClientCertificate:
    der: bytes
    fingerprint_sha256: str  # lowercase hex, as shown in the admin
    x5t_s256: str  # RFC 8705 thumbprint: base64url(SHA-256(DER)), no padding
    subject: str


@functools.lru_cache(maxsize=256)
def parse_forwarded_certificate(escaped_pem: str) -> ClientCertificate | None:
    """The certificate in nginx's escaped PEM, or None if it does not parse. Partners call with the
    same certificate again and again: the parsed, immutable result is kept per header value."""
    try:
        cert = x509.load_pem_x509_certificate(unquote(escaped_pem).encode())
    except ValueError:
        return None
    der = cert.public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).digest()
    return ClientCertificate(
        der=der,
        fingerprint_sha256=digest.hex(),
        x5t_s256=base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        subject=cert.subject.rfc4514_string(),
    )


class ClientCertificateMiddleware:
    """Sets `request.client_certificate` (or None) from a trusted proxy's headers; drops them otherwise."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.client_certificate = None
        escaped = request.META.pop(CERT_HEADER, "")
        verified = request.META.pop(VERIFY_HEADER, "")
        from_proxy = address_in(request.META.get("REMOTE_ADDR", ""), settings.TRUSTED_PROXY_CIDRS)
        if from_proxy and verified == "SUCCESS" and escaped:
            request.client_certificate = parse_forwarded_certificate(escaped)
        return self.get_response(request)
