"""The partner's side of a credentials rotation: it opens the key material our admin exported
and switches to it while its barriers keep deciding.

``POST /_control/key-material`` ``{"jwe": "<compact JWE>"}`` hands the sandbox the file of
`partners.key_material` (in production it arrives by mail or a file drop; here the operator or
a test posts it). The sandbox opens it with its own JWE private keys (``partner-jwe.key``,
``partner-jwe-rsa.key``) - anything else is 400 ``undecryptable``, an older version than the
one it uses is 409 ``superseded`` - and switches at once:

- its cameras tokenise arriving plates under the new plate-token key (an arrival
  ``{type: "plate", plate: "A123BC77"}``; HMAC-SHA256 of the normalised plate, hex);
- the events it sends us are signed with the new webhook secret;
- our events verify under the new outbound webhook secret or the one before;
- our client authenticates at its token endpoint with the new client secret or the one before.

The answer carries the fingerprints to read aloud (groups of four), to compare with the ones
our admin shows. Secrets never appear in the answer, the state snapshot or the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from partners.key_material import MaterialError, material_decrypt, spoken

from .oauth import ClientRegistry
from .routing import ApiError
from .smarthome_link import SmarthomeLink
from .store import PartnerState

_SEPARATORS = re.compile(r"[\s\-.·_]+")
_CYRILLIC_TO_LATIN = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")


def normalised_plate(plate: str) -> str:
    """The contract's normal form: upper-case, separators removed, Cyrillic letters as Latin twins."""
    return _SEPARATORS.sub("", plate).upper().translate(_CYRILLIC_TO_LATIN)


class PartnerKeyring:
    def __init__(self, state: PartnerState, link: SmarthomeLink, clients: ClientRegistry, private_keys):
        self.state = state
        self.link = link
        self.clients = clients
        self._private_keys = list(private_keys)

    def install(self, compact) -> dict:
        """Open `compact` and switch to its material; ApiError 400/409 (nothing changes then)."""
        if not isinstance(compact, str):
            raise ApiError(400, "invalid_request", "jwe (a compact JWE string) is required")
        try:
            document = material_decrypt(compact, self._private_keys)
        except MaterialError as error:
            raise ApiError(400, "undecryptable", str(error)) from None
        version, secrets = document.get("credentials_version"), document["secrets"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ApiError(400, "undecryptable", "credentials_version missing")
        with self.state.lock:
            if self.state.plate_key is not None and version < self.state.plate_key[0]:
                raise ApiError(409, "superseded", f"version {self.state.plate_key[0]} is in use")
            self.state.plate_key = (version, base64.b64decode(secrets["plate_token_key"]))
        self.link.rotate_secrets(webhook_secret=secrets["webhook_secret"],
                                 outbound_webhook_secret=secrets["outbound_webhook_secret"])
        if isinstance(document.get("client_id"), str) and document["client_id"]:
            self.clients.add_secret(document["client_id"], secrets["client_secret"])
        return {
            "credentials_version": version,
            "fingerprints": {name: spoken(value) for name, value in document["fingerprints"].items()},
            "previous_plate_key": document.get("previous_plate_key"),
        }

    def plate_token(self, plate) -> tuple[int, str]:
        """(credentials version, token) of a plate a camera read, under the key in use."""
        if not isinstance(plate, str) or not plate.strip():
            raise ApiError(400, "invalid_request", "plate must be a non-empty string")
        with self.state.lock:
            if self.state.plate_key is None:
                raise ApiError(409, "no_plate_key", "install key material first: POST /_control/key-material")
            version, key = self.state.plate_key
        return version, hmac.new(key, normalised_plate(plate).encode(), hashlib.sha256).hexdigest()
