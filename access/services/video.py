"""Live video for residents: the partner creates a WebRTC session; video never flows through us."""

from __future__ import annotations

import uuid

from django.utils.translation import gettext

from access.errors import DeviceOffline
from access.models import Device, Resident
from access.services.opening import _audit, device_authorise, resident_subject
from audit.actions import Action, Outcome
from core.http.request_context import current_request_id
from core.security.identifiers import user_ref
from partners.client import (
    PartnerRejected,
    PartnerUnavailable,
    PartnerUnavailableProblem,
    WebRTCSession,
    create_webrtc_session,
    partner_connection_for,
)


def video_session_create(*, user, resident: Resident, device: Device, sdp_offer: str | None = None,
                         source_ip=None) -> WebRTCSession:
    """Ask the device's partner for a WebRTC session for the resident.

    Checks: the rules for "video" (RuleDenied with the reason). Records resident.video with the
    outcome (and grant.check). Raises DeviceOffline if the partner says the device is
    offline, PartnerUnavailableProblem (503 + Retry-After) if the partner cannot answer.
    """
    device_authorise(user=user, resident=resident, device=device, operation="video", action=Action.RESIDENT_VIDEO,
                     source_ip=source_ip)
    subject = resident_subject(resident=resident, device=device)
    request_id = current_request_id()
    if not request_id or request_id == "-":
        request_id = str(uuid.uuid4())
    try:
        session = create_webrtc_session(
            partner_connection_for(device.partner), device_ref=device.partner_device_ref, subject=subject,
            request_id=request_id, sdp_offer=sdp_offer, company_id=device.building.company_id,
            building_id=device.building_id, actor_ref=user_ref(user),
        )
    except PartnerUnavailable as exc:
        _audit(Action.RESIDENT_VIDEO, user=user, device=device, outcome=Outcome.UNAVAILABLE,
               reason=f"partner_{exc.reason}", source_ip=source_ip)
        raise PartnerUnavailableProblem(exc) from None
    except PartnerRejected as exc:
        offline = exc.error_code == "device_offline"
        _audit(Action.RESIDENT_VIDEO, user=user, device=device,
               outcome=Outcome.UNAVAILABLE if offline else Outcome.FAILURE,
               reason="device_offline" if offline else "partner_rejected", source_ip=source_ip)
        if offline:
            raise DeviceOffline() from None
        raise PartnerUnavailableProblem(detail=gettext("The partner refused to start a video session.")) from None
    _audit(Action.RESIDENT_VIDEO, user=user, device=device, outcome=Outcome.SUCCESS, reason="session_created",
           source_ip=source_ip)
    return session
