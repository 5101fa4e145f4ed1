"""Move-outs dated in the future take effect on their day.

`residency_end(on=<future date>)` ends the residency and its grants from that day (decisions
and allowlists judge validity by date already), but revoking the resident's face consents for
the building must wait for the day itself. An hourly beat task does it here.
"""

import datetime

from django.utils import timezone

from access.models import Residency

LOOKBACK_DAYS = 3  # a few missed runs of the daily task are still caught up


def move_outs_due(*, today: datetime.date | None = None) -> int:
    """Revoke (reason `move_out`) the face consents tied to buildings residents moved out of in the
    last LOOKBACK_DAYS days, unless they live in that building again. Idempotent: only open consents
    are revoked, each audited and its deletion sent to the partner. Returns how many were revoked."""
    from consent.services import subject_forget

    today = today or timezone.localdate()
    ended = (
        Residency.objects.filter(valid_until__gt=today - datetime.timedelta(days=LOOKBACK_DAYS),
                                 valid_until__lte=today)
        .values_list("resident_id", "unit__building_id")
        .distinct()
    )
    revoked = 0
    for resident_id, building_id in sorted(ended):
        still_there = any(
            residency.is_current(today)
            for residency in Residency.objects.filter(resident_id=resident_id, unit__building_id=building_id)
        )
        if not still_there:
            revoked += subject_forget(resident_id=resident_id, reason="move_out", building_id=building_id)
    return revoked
