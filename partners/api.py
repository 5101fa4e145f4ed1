"""Partner API views of the partners app: POST /partner/v1/events (signed webhooks)."""

from auditlog.context import set_actor
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.schema import problems
from core.api.serializers import BodySerializer, text_pattern
from core.http.client_ip import client_ip
from partners.authentication import IsPartner, PartnerAuthentication, partner_scope_required
from partners.webhooks import (
    DATA_KEYS,
    EVENT_TYPE,
    KNOWN_EVENT_TYPES,
    WEBHOOK_ID,
    EventRefused,
    WebhookMalformed,
    WebhookRejected,
    inbound_webhook_receive,
)

# Standard Webhooks headers (https://www.standardwebhooks.com/): what the signature covers
WEBHOOK_HEADERS = [
    OpenApiParameter("webhook-id", str, OpenApiParameter.HEADER, required=True, pattern=WEBHOOK_ID.pattern,
                     description="Unique per event; a repeated id is acknowledged as `duplicate` and changes nothing"),
    OpenApiParameter("webhook-timestamp", str, OpenApiParameter.HEADER, required=True, pattern=r"^[0-9]{1,20}$",
                     description="Unix seconds; within 5 minutes of our clock"),
    OpenApiParameter("webhook-signature", str, OpenApiParameter.HEADER, required=True,
                     pattern=r"^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$",
                     description="`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the partner's webhook "
                                 "secret; several, space-separated, during a rotation"),
]


class WebhookSignatureInvalid(exceptions.AuthenticationFailed):
    problem_code = "webhook-signature-invalid"

    def __init__(self, reason: str):
        super().__init__(gettext("The webhook did not verify (%(reason)s).") % {"reason": reason})
        self.problem_extra = {"reason": reason}


class WebhookInvalid(exceptions.ValidationError):
    problem_code = "webhook-malformed"


class EventNotYours(exceptions.APIException):
    """422: the event names a device or subject that is not the partner's (partners.webhooks.EventRefused)."""

    status_code = 422

    def __init__(self, refused: EventRefused):
        super().__init__(refused.detail)
        self.problem_code = refused.code


_DATA_VALUE = {"anyOf": [{"type": "string", "pattern": text_pattern()}, {"type": "number"}, {"type": "boolean"}]}


@extend_schema_field({
    "type": "object",
    "properties": dict.fromkeys(sorted(DATA_KEYS), _DATA_VALUE),
    "propertyNames": {"pattern": text_pattern()},
    "additionalProperties": _DATA_VALUE,
    "description": "Flat: text, numbers and booleans. Only the listed keys are kept, with values of "
                   "[A-Za-z0-9:._+-] (up to 128), integers or booleans; anything else is ignored",
})
class EventDataField(serializers.DictField):
    pass


class PartnerEventApi(APIView):
    """A partner's event, signed per Standard Webhooks. Known types (KNOWN_EVENT_TYPES) are
    processed; others are stored and acknowledged (`stored`), so the partner may add types.
    `data` keeps only its known keys with values of [A-Za-z0-9:._+-] (up to 128), integers or
    booleans; anything else in it is ignored. An event naming a device or subject that is not
    the partner's is 422 (`/problems/unknown-device`, `/problems/unknown-subject`)."""

    authentication_classes = [PartnerAuthentication]
    permission_classes = [IsPartner, partner_scope_required("events:write")]

    class EventSerializer(BodySerializer):
        """The envelope (the schema of what partners.webhooks reads from the signed body)."""

        class Meta:
            ref_name = "PartnerEvent"

        type = serializers.RegexField(
            EVENT_TYPE.pattern, help_text=f"e.g. {', '.join(sorted(KNOWN_EVENT_TYPES))}; other types are stored")
        timestamp = serializers.DateTimeField(required=False, help_text="When it happened (default: when received)")
        data = EventDataField(required=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PartnerEventAck"

        webhook_id = serializers.CharField()
        status = serializers.ChoiceField(choices=["processed", "stored", "duplicate"])

    @extend_schema(
        request=EventSerializer, parameters=WEBHOOK_HEADERS, operation_id="partner_event_create", tags=["partner"],
        responses={200: OutputSerializer, **problems(
            401, 403, 422,
            s401="No verified client certificate, no valid bound token, or the signature did not verify "
                 "(`/problems/webhook-signature-invalid`, `reason`)",
            s403="Address not allowed (`/problems/ip-not-allowed`), partner suspended, or missing scope",
            s422="The event names a device or subject that is not yours")},
    )
    def post(self, request):
        try:
            # the partner pool has no auditlog middleware: admin-trail entries for what this event
            # changes (a device going online) still name the partner's address
            with set_actor(actor=None, remote_addr=client_ip(request._request)):
                received = inbound_webhook_receive(
                    partner=request.user.partner, body=request._request.body, headers=dict(request.headers)
                )
        except WebhookRejected as rejected:
            raise WebhookSignatureInvalid(rejected.code) from None
        except EventRefused as refused:
            raise EventNotYours(refused) from None
        except WebhookMalformed as malformed:
            raise WebhookInvalid(malformed.errors or {"body": [str(malformed)]}) from None
        webhook = received.webhook
        status = "duplicate" if received.duplicate else ("processed" if webhook.known else "stored")
        return Response(self.OutputSerializer({"webhook_id": webhook.webhook_id, "status": status}).data)
