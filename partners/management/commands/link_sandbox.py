"""Point the running sandbox partner at our service (used by `make run` after seed_demo).

Ensures the sandbox partner has an OAuth2 client-credentials application bound to it, gives it
a fresh secret (the stored one is hashed, so each run issues a new one), and sends the sandbox,
through its control port, our partner-API address (nginx's mTLS listener), the token URL, that
client and the partner's current webhook secrets. Prints no secret.
"""

from django.core.management.base import BaseCommand, CommandError

from partners.models import Partner
from partners.sandbox.control import SandboxControl, SandboxControlError
from partners.selectors import current_credentials
from partners.services import partner_api_client_issue

SANDBOX_SLUG = "sandbox"
CLIENT_ID = "sandbox-partner"


class Command(BaseCommand):
    help = "Link the running sandbox partner to this service (token client, webhook secrets, base URL)."

    def add_arguments(self, parser):
        parser.add_argument("--control-url", default="http://127.0.0.1:8444", help="the sandbox's control API")
        parser.add_argument("--partner-url", default="https://localhost:9444",
                            help="our partner API as the sandbox reaches it (nginx's mTLS listener)")

    def handle(self, *args, control_url, partner_url, **options):
        partner = Partner.objects.filter(slug=SANDBOX_SLUG).first()
        if partner is None:
            raise CommandError("no sandbox partner: run seed_demo first")
        credentials = current_credentials(partner=partner)
        if credentials is None:
            raise CommandError("the sandbox partner has no current credentials")
        client_secret = partner_api_client_issue(partner=partner, client_id=CLIENT_ID)
        base = partner_url.rstrip("/")
        try:
            SandboxControl(control_url).configure_smarthome(
                base, token_url=f"{base}/o/token/", client_id=CLIENT_ID, client_secret=client_secret,
                webhook_secret=credentials.webhook_secret,
                outbound_webhook_secret=credentials.outbound_webhook_secret,
            )
        except (SandboxControlError, OSError) as exc:
            raise CommandError(f"the sandbox did not accept the link: {exc}") from exc
        self.stdout.write(f"link_sandbox: the sandbox partner calls {base} (client '{CLIENT_ID}')")
