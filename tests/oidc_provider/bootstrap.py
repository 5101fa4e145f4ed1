"""`python -m tests.oidc_provider.bootstrap CLIENT_SECRET REDIRECT_URI`: create the provider's
database and register our service as a confidential client (RS256 ID tokens, no consent screen)."""

import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("migrate", "--run-syncdb", verbosity=0)
    application = get_application_model()
    application.objects.filter(client_id=settings.CLIENT_ID).delete()
    application.objects.create(
        name="smarthome", client_id=settings.CLIENT_ID, client_secret=sys.argv[1],
        client_type=application.CLIENT_CONFIDENTIAL, authorization_grant_type=application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=sys.argv[2], algorithm=application.RS256_ALGORITHM, skip_authorization=True,
    )


if __name__ == "__main__":
    main()
