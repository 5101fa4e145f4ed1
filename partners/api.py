"""Partner API views of the partners app: POST /partner/v1/events (signed webhooks)."""

from auditlog.context import set_actor
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http.client_ip import client_ip
from partners.authentication import IsPartner, PartnerAuthentication, partner_scope_required
from partners.webhooks import EventRefused, WebhookMalformed, WebhookRejected, inbound_webhook_receive


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


class PartnerEventApi(APIView):
    authentication_classes = [PartnerAuthentication]
    permission_classes = [IsPartner, partner_scope_required("events:write")]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PartnerEventAck"

        webhook_id = serializers.CharField()
        status = serializers.ChoiceField(choices=["processed", "stored", "duplicate"])

    @extend_schema(request=None, responses={200: OutputSerializer, 401: OpenApiResponse(description="bad signature")},
                   operation_id="partner_event_create", tags=["partner"])
    def post(self, request):
        try:
            # the machine lane skips auditlog's middleware: admin-trail entries for what this event
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
