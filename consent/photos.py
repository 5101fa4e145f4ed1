"""Face photo intake: decode, check, and re-encode in memory so no metadata survives.

Only JPEG and PNG are accepted. The decoded image is re-encoded as a fresh JPEG, which drops
EXIF (GPS position, camera serial, time), ICC profiles and any trailing bytes. Nothing here
touches the disk; the upload handler in `consent.uploads` keeps the upload itself in memory.
"""

import io
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
REENCODE_QUALITIES = (92, 85, 75, 60)


class PhotoRejected(Exception):
    """The photo cannot be used; `status` is the HTTP status the API answers with."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CleanPhoto:
    jpeg: bytes
    width: int
    height: int


def clean_face_photo(data: bytes, *, declared_content_type: str = "") -> CleanPhoto:
    """Validate a face photo and return it re-encoded as metadata-free JPEG.

    The returned JPEG is at most FACE_PHOTO_MAX_BYTES too (re-encoded at a lower quality if
    need be), so whatever is accepted here fits the partner's JWE limits.
    Raises PhotoRejected: 413 `too_large` over FACE_PHOTO_MAX_BYTES (or if even the re-encoded
    JPEG at the lowest quality is larger); 415 `unsupported_type`
    for anything but JPEG/PNG (by content, not by the declared type); 400 `undecodable`,
    `too_small`, `too_big_dimensions` or `decompression_bomb`.
    """
    if len(data) > settings.FACE_PHOTO_MAX_BYTES:
        raise PhotoRejected(
            413, "too_large", f"The photo is {len(data)} bytes; at most {settings.FACE_PHOTO_MAX_BYTES} are accepted."
        )
    if declared_content_type and declared_content_type not in ACCEPTED_FORMATS.values():
        raise PhotoRejected(415, "unsupported_type", "Send the photo as image/jpeg or image/png.")
    max_side = settings.FACE_PHOTO_MAX_SIDE_PX
    try:
        with Image.open(io.BytesIO(data)) as probe:
            image_format = probe.format
            width, height = probe.size
            if image_format not in ACCEPTED_FORMATS:
                raise PhotoRejected(415, "unsupported_type", "Only JPEG and PNG photos are accepted.")
            if width > max_side or height > max_side:
                raise PhotoRejected(
                    400, "too_big_dimensions", f"The photo is {width}×{height} px; at most {max_side} px per side."
                )
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except PhotoRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise PhotoRejected(400, "decompression_bomb", "The photo declares an implausible size.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PhotoRejected(415 if image_format_unknown(data) else 400, "undecodable",
                            "The file is not a readable JPEG or PNG image.") from exc
    min_side = settings.FACE_PHOTO_MIN_SIDE_PX
    if width < min_side or height < min_side:
        raise PhotoRejected(400, "too_small", f"The photo is {width}×{height} px; at least {min_side} px per side.")
    jpeg = _reencode_within(rgb, settings.FACE_PHOTO_MAX_BYTES)
    if jpeg is None:
        raise PhotoRejected(
            413, "too_large",
            f"The photo does not fit in {settings.FACE_PHOTO_MAX_BYTES} bytes even re-encoded; send a smaller one.",
        )
    return CleanPhoto(jpeg=jpeg, width=width, height=height)


def _reencode_within(rgb: Image.Image, max_bytes: int) -> bytes | None:
    """The image as a fresh JPEG of at most `max_bytes` (what is encrypted to the partner, whose
    JWE limits are derived from the same number): the first of REENCODE_QUALITIES that fits -
    re-encoding a grainy photo at a higher quality than it was saved with can make it larger."""
    for quality in REENCODE_QUALITIES:
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() <= max_bytes:
            return out.getvalue()
    return None


def image_format_unknown(data: bytes) -> bool:
    return not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n"))
