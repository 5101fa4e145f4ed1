"""Point the running sandbox partner at our service (used by `make run` after seed_demo).

Registers the sandbox partner's devices at the sandbox (online: the sandbox knows only the
devices it is told about); ensures the sandbox partner has an OAuth2 client-credentials
application bound to it, gives it a fresh secret (the stored one is hashed, so each run issues a
new one), and sends the sandbox, through its control port, our partner-API address (nginx's mTLS
listener), the token URL, that client and the partner's current webhook secrets, and sends at
once what waited for that link in the outbox (events the sandbox could not verify yet). Then has the
sandbox report each device online the way a partner does - a signed `device.online` event to our
partner API - so the demo shows them online. Prints no secret.
"""

from django.core.management.base import BaseCommand, CommandError

from partners.models import Partner
from partners.outbox.services import outbox_bring_forward
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
        control = SandboxControl(control_url)
        refs = sorted(partner.devices.values_list("partner_device_ref", flat=True))
        try:
            for ref in refs:
                control.put_device(ref, online=True)
            control.configure_smarthome(
                base, token_url=f"{base}/o/token/", client_id=CLIENT_ID, client_secret=client_secret,
                webhook_secret=credentials.webhook_secret,
                outbound_webhook_secret=credentials.outbound_webhook_secret,
            )
        except (SandboxControlError, OSError) as exc:
            raise CommandError(f"the sandbox did not accept the link: {exc}") from exc
        self.stdout.write(f"link_sandbox: the sandbox partner calls {base} (client '{CLIENT_ID}'); "
                          f"{len(refs)} devices registered there")
        # events sent before the sandbox knew their signing secret were refused: send them now
        outbox_bring_forward(partner_id=partner.pk)
        reported = sum(self._report_online(control, ref) for ref in refs)
        if refs:
            self.stdout.write(f"link_sandbox: {reported} of {len(refs)} devices reported online by the sandbox")

    def _report_online(self, control: SandboxControl, ref: str) -> bool:
        """The sandbox sends us `device.online` for `ref` (through our partner API, signed)."""
        try:
            status = control.emit_event("device.online", {"device_ref": ref}).get("http_status")
        except (SandboxControlError, OSError) as exc:
            self.stderr.write(f"link_sandbox: device {ref} not reported online ({exc})")
            return False
        if status != 200:
            self.stderr.write(f"link_sandbox: our partner API answered {status} to device {ref} going online")
        return status == 200
