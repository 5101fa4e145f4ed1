"""Field encryption at rest: AES-256-GCM with a keyring from the environment.

`keyring` holds the keys and the envelope format; `fields` the model fields that use them.
See docs/security.md, "Encryption at rest".
"""

from core.crypto.keyring import (
    DecryptionError,
    KeyringError,
    decrypt,
    encrypt,
    envelope_kid,
    get_keyring,
    reset_keyring,
)

__all__ = [
    "DecryptionError",
    "KeyringError",
    "decrypt",
    "encrypt",
    "envelope_kid",
    "get_keyring",
    "reset_keyring",
]
