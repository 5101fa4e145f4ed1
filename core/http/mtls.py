"""The client certificate a TLS terminator verified, as the service sees it.

gunicorn never hands the client certificate to the application, so nginx terminates TLS for
the partner API with `ssl_verify_client on` and forwards the verified certificate in
`X-Client-Cert` ($ssl_client_escaped_cert) with `X-Client-Verify` ($ssl_client_verify). Those
headers are believed only over the trusted proxy hop (core/http/proxy.py: a proxy peer that
presents the proxy secret); from anyone else they are discarded, so a caller cannot claim a
certificate by sending a header - not even a local process talking to the service's port.
"""

import base64
import functools
import hashlib
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from core.http.proxy import via_trusted_proxy

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
    """Sets `request.client_certificate` (or None) from the trusted proxy hop's headers; drops them otherwise."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.client_certificate = None
        escaped = request.META.pop(CERT_HEADER, "")
        verified = request.META.pop(VERIFY_HEADER, "")
        if via_trusted_proxy(request) and verified == "SUCCESS" and escaped:
            request.client_certificate = parse_forwarded_certificate(escaped)
        return self.get_response(request)
