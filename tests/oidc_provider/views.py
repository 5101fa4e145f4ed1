"""The provider's login page and its control endpoints (tests only: users, faults, logout)."""

import json
import time
import uuid

import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from jwcrypto import jwt

from tests.oidc_provider.keys import signing_key, unpublished_key
from tests.oidc_provider.models import Fault, Profile

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@csrf_exempt
def control_user(request):
    data = json.loads(request.body)
    user, _ = User.objects.get_or_create(username=data["username"])
    user.set_password(data["password"])
    user.save()
    Profile.objects.update_or_create(user=user, defaults={"claims": data.get("claims", {})})
    return JsonResponse({"sub": str(user.pk)})


@csrf_exempt
def control_fault(request):
    Fault.objects.all().delete()
    mode = json.loads(request.body).get("mode", "")
    if mode:
        Fault.objects.create(mode=mode)
    return JsonResponse({"mode": mode})


@csrf_exempt
def control_backchannel_logout(request):
    """Send a logout token to `url` the way Keycloak does; `mode` spoils it for refusal tests."""
    data = json.loads(request.body)
    claims = {
        "iss": f"{settings.BASE_URL}/o",
        "aud": settings.CLIENT_ID,
        "iat": int(time.time()),
        "exp": int(time.time()) + 120,
        "jti": data.get("jti") or uuid.uuid4().hex,
        "events": {BACKCHANNEL_EVENT: {}},
    }
    if data.get("sub"):
        claims["sub"] = data["sub"]
    if data.get("sid"):
        claims["sid"] = data["sid"]
    key = signing_key()
    mode = data.get("mode", "")
    if mode == "wrong_aud":
        claims["aud"] = "another-client"
    elif mode == "no_event":
        claims["events"] = {}
    elif mode == "with_nonce":
        claims["nonce"] = "n"
    elif mode == "unknown_key":
        key = unpublished_key()
    token = jwt.JWT(header=json.dumps({"alg": "RS256", "typ": "logout+jwt", "kid": key.thumbprint()}),
                    claims=json.dumps(claims))
    token.make_signed_token(key)
    response = requests.post(data["url"], data={"logout_token": token.serialize()}, timeout=10)
    return JsonResponse({"status": response.status_code, "jti": claims["jti"]})
