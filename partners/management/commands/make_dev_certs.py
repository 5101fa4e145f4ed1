"""``manage.py make_dev_certs [--out DIR] [--force]``: create the local development PKI.

Thin wrapper over `partners.devcerts.generate_dev_pki`; prints every file with, for
certificates, its SHA-256 fingerprint (the value the admin and the partner compare).
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from partners.devcerts import fingerprint_sha256, generate_dev_pki


class Command(BaseCommand):
    help = "Create the dev CA, TLS certificates, JWE and token-signing keys (existing files are kept)."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, help="output directory (default: <VAR_DIR>/certs)")
        parser.add_argument("--force", action="store_true", help="regenerate every file")

    def handle(self, *args, out=None, force=False, **options):
        out_dir = Path(out) if out else Path(settings.VAR_DIR) / "certs"
        paths = generate_dev_pki(out_dir, force=force)
        for name, path in paths.items():
            line = str(path)
            if name.endswith(".pem") and not name.endswith(".pub.pem"):
                line += f"  sha256={fingerprint_sha256(path.read_bytes())}"
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"{len(paths)} files in {out_dir}"))
