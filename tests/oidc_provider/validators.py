"""django-oauth-toolkit's validator with the profile's claims in the ID token, and fault injection."""

import json
import time

from jwcrypto import jwt
from oauth2_provider.oauth2_validators import OAuth2Validator

from tests.oidc_provider.keys import unpublished_key
from tests.oidc_provider.models import Fault, Profile


class ProviderValidator(OAuth2Validator):
    oidc_claim_scope = None  # every claim of the profile, whatever the scopes

    def get_additional_claims(self, request):
        profile = Profile.objects.filter(user=request.user).first()
        claims = dict(profile.claims) if profile else {}
        claims.setdefault("sid", f"sid-{request.user.pk}")
        return claims

    def finalize_id_token(self, id_token, token, token_handler, request):
        mode = Fault.current()
        if not mode:
            return super().finalize_id_token(id_token, token, token_handler, request)
        claims, expiration_time = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        key = request.client.jwk_key
        if mode == "wrong_nonce":
            id_token["nonce"] = "not-the-nonce-you-sent"
        elif mode == "wrong_aud":
            id_token["aud"] = "another-client"
        elif mode == "expired":
            id_token["iat"] = int(time.time()) - 7200
            id_token["exp"] = int(time.time()) - 3600
        elif mode == "unknown_key":
            key = unpublished_key()
        header = {"typ": "JWT", "alg": "RS256", "kid": key.thumbprint()}
        signed = jwt.JWT(header=json.dumps(header), claims=json.dumps(id_token, default=str))
        signed.make_signed_token(key)
        self._save_id_token(id_token["jti"], request, expiration_time)
        return signed.serialize()
