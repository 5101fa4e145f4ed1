"""A real nginx in front of pytest-django's live server: public TLS and partner mTLS listeners."""

from urllib.parse import urlparse

import pytest

from core import nginx
from tests import infra


@pytest.fixture
def proxy(live_server, dev_pki, tmp_path, settings):
    """nginx terminating TLS for `live_server`; the service trusts its X-Client-Cert header."""
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    upstream = urlparse(live_server.url)
    public_port, partner_port = infra.free_ports(2)
    config = nginx.ProxyConfig(
        prefix=tmp_path / "nginx", upstream=f"127.0.0.1:{upstream.port}",
        public_port=public_port, partner_port=partner_port,
        server_cert=dev_pki["smarthome-server.pem"], server_key=dev_pki["smarthome-server.key"],
        partner_ca=dev_pki["ca.pem"],
    )
    process = nginx.start(config)
    infra.wait_for_http(f"https://localhost:{config.public_port}/healthz", verify=str(dev_pki["ca.pem"]))
    yield config
    process.terminate()
    process.wait(10)
