"""Pairwise pseudonymous subject ids: how a partner knows a resident (or a staff member opening a door).

`HMAC-SHA256(partner's subject key, "resident:<id>")`, base64url: stable for one partner, and
unlinkable across partners because each has its own key.
"""

import base64
import hashlib
import hmac


def pairwise_subject_id(*, subject_key: bytes, resident_id: int) -> str:
    digest = hmac.new(subject_key, f"resident:{resident_id}".encode(), hashlib.sha256).digest()
    return "sub_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pairwise_staff_subject_id(*, subject_key: bytes, user_id: int) -> str:
    """How a partner knows a staff member who opens a device remotely: the same construction over
    `"staff:<user id>"`, so it never equals a resident's subject id and says nothing about them."""
    digest = hmac.new(subject_key, f"staff:{user_id}".encode(), hashlib.sha256).digest()
    return "stf_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
