"""Write nginx's configuration (core/nginx.py) from the settings and where things are.

    manage.py nginx_config --prefix /var/lib/smarthome-nginx \\
        --public-upstream unix:/run/smarthome/public.sock --partner-upstream unix:/run/smarthome/partner.sock \\
        --server-cert /etc/smarthome/tls/server.pem --server-key /etc/smarthome/tls/server.key \\
        --partner-ca /etc/smarthome/tls/partners-ca.pem [--public-port 443] [--partner-port 8443]

From the settings: the proxy secret (PROXY_AUTH_SECRET), the face upload limit
(FACE_UPLOAD_MAX_BYTES) and the public listener's limits per client address
(NGINX_PUBLIC_RATE_PER_S, NGINX_PUBLIC_BURST, NGINX_PUBLIC_CONNECTIONS). Writes
`<prefix>/nginx.conf` (mode 0600: it holds the secret) and prints its path; run nginx with
`nginx -p <prefix> -c <prefix>/nginx.conf`. `--listeners public` / `--listeners partner` write the
configuration of an nginx that serves one listener (one prefix each). `make run` uses it too.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import nginx


class Command(BaseCommand):
    help = "Write nginx's configuration for both listeners and both worker pools from the settings."

    def add_arguments(self, parser):
        parser.add_argument("--prefix", required=True, type=Path, help="nginx's directory: config, pid, logs, temp")
        parser.add_argument("--public-upstream", required=True, help="the public pool: host:port or unix:/path")
        parser.add_argument("--partner-upstream", required=True, help="the partner pool: host:port or unix:/path")
        parser.add_argument("--server-cert", required=True, type=Path)
        parser.add_argument("--server-key", required=True, type=Path)
        parser.add_argument("--partner-ca", required=True, type=Path, help="the CA of partners' client certificates")
        parser.add_argument("--public-port", type=int, default=443)
        parser.add_argument("--partner-port", type=int, default=8443)
        parser.add_argument("--listen-host", default="0.0.0.0")  # noqa: S104 - nginx is the edge
        parser.add_argument("--listeners", default="public,partner",
                            help="the listeners of this nginx: both, or one (an nginx per listener)")
        parser.add_argument("--worker-processes", default="auto")

    def handle(self, *args, **options):
        if not settings.PROXY_AUTH_SECRET:
            raise CommandError("PROXY_AUTH_SECRET is not set: the service would believe no header nginx sends")
        face_upload_max = settings.REQUEST_BODY_MAX_BYTES_BY_PREFIX.get(nginx.FACE_UPLOAD_PREFIX)
        try:
            conf = nginx.write_config(nginx.ProxyConfig(
                prefix=options["prefix"], upstream=options["public_upstream"],
                partner_upstream=options["partner_upstream"], public_port=options["public_port"],
                partner_port=options["partner_port"], server_cert=options["server_cert"],
                server_key=options["server_key"], partner_ca=options["partner_ca"],
                proxy_secret=settings.PROXY_AUTH_SECRET, face_upload_max=str(face_upload_max),
                listen_host=options["listen_host"], public_rate_per_s=settings.NGINX_PUBLIC_RATE_PER_S,
                public_burst=settings.NGINX_PUBLIC_BURST, public_connections=settings.NGINX_PUBLIC_CONNECTIONS,
                listeners=tuple(options["listeners"].split(",")), worker_processes=options["worker_processes"],
            ))
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(str(conf))
