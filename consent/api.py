"""Resident API of the consent app, mounted under /api/v1/ (one class per resource operation)."""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from consent import selectors, services
from consent.models import Consent, ConsentText
from consent.photos import PhotoRejected
from consent.receipts import consent_receipt
from consent.uploads import InMemoryOnlyUploadHandler
from core.api.permissions import MissingScope, scope_required
from core.http.client_ip import client_ip
from core.security.identifiers import user_ref
from partners.models import Partner


class NotAResident(exceptions.PermissionDenied):
    problem_code = "not-a-resident"
    default_detail = "This account is not a resident's."


class ConsentRequiredProblem(exceptions.PermissionDenied):
    problem_code = "consent-required"
    default_detail = "Give your consent to face processing by this partner first."


class PartnerKeyMissingProblem(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    problem_code = "partner-key-missing"
    default_detail = "This partner cannot receive face photos at the moment."


class PhotoProblem(exceptions.APIException):
    def __init__(self, rejected: PhotoRejected):
        super().__init__(rejected.message)
        self.status_code = rejected.status
        self.problem_code = f"photo-{rejected.code.replace('_', '-')}"


class ReadScope(BasePermission):
    """Reads: the token needs `history:read` or `consent:write` (403 missing-scope otherwise)."""

    def has_permission(self, request, view):
        token = request.auth
        if token is None or not hasattr(token, "allow_scopes"):
            raise exceptions.NotAuthenticated()
        if token.allow_scopes(["history:read"]) or token.allow_scopes(["consent:write"]):
            return True
        raise MissingScope("history:read")


WriteScope = scope_required("consent:write")


def _by_method(request):
    return [ReadScope()] if request.method in SAFE_METHODS else [WriteScope()]


def resident_of(request):
    try:
        return request.user.resident
    except (ObjectDoesNotExist, AttributeError):
        raise NotAResident() from None


def _validation(error: DjangoValidationError):
    return exceptions.ValidationError({"non_field_errors": [error.messages[0]]}, code=error.code)


class ConsentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    partner = serializers.IntegerField(source="partner_id")
    partner_name = serializers.CharField(source="partner.name")
    purpose = serializers.CharField()
    building = serializers.IntegerField(source="building_id", allow_null=True)
    text_version = serializers.CharField(source="text.version")
    text_sha256 = serializers.CharField(source="text.sha256")
    granted_at = serializers.DateTimeField()
    retention_until = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_reason = serializers.CharField()
    channel = serializers.CharField()
    active = serializers.SerializerMethodField()

    def get_active(self, consent) -> bool:
        return consent.is_active()


class ConsentListApi(APIView):
    """GET: your consents (history included). POST: give a consent (scope consent:write)."""

    class ConsentGiveInputSerializer(serializers.Serializer):
        partner = serializers.PrimaryKeyRelatedField(queryset=Partner.objects.all())
        text_sha256 = serializers.SlugRelatedField(
            slug_field="sha256", queryset=ConsentText.objects.all(), help_text="SHA-256 of the consent text shown"
        )
        building = serializers.IntegerField(required=False, allow_null=True)
        retention_until = serializers.DateTimeField(required=False)

    def get_permissions(self):
        return _by_method(self.request)

    @extend_schema(responses=ConsentOutput(many=True), operation_id="consents_list", tags=["consent"])
    def get(self, request):
        resident = resident_of(request)
        consents = selectors.consent_list(resident_id=resident.pk)
        return Response(ConsentOutput(consents, many=True).data)

    @extend_schema(request=ConsentGiveInputSerializer, responses={201: ConsentOutput}, operation_id="consents_give",
                   tags=["consent"])
    def post(self, request):
        resident = resident_of(request)
        data = self.ConsentGiveInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            consent = services.consent_give(
                resident_id=resident.pk, company_id=resident.company_id,
                partner=data.validated_data["partner"], text=data.validated_data["text_sha256"],
                building_id=data.validated_data.get("building"),
                retention_until=data.validated_data.get("retention_until"), channel=Consent.Channel.APP,
                evidence_ip=client_ip(request), user_agent=request.headers.get("User-Agent", ""),
                actor=request.user,
            )
        except DjangoValidationError as error:
            raise _validation(error) from None
        return Response(ConsentOutput(consent).data, status=status.HTTP_201_CREATED)


def _own_consent(request, pk) -> Consent:
    resident = resident_of(request)
    return get_object_or_404(Consent.objects.select_related("text", "partner"), pk=pk, resident_id=resident.pk)


class ConsentRevokeApi(APIView):
    permission_classes = [WriteScope]

    @extend_schema(request=None, responses=ConsentOutput, operation_id="consents_revoke", tags=["consent"])
    def post(self, request, pk: int):
        consent = _own_consent(request, pk)
        revoked = services.consent_revoke(consent=consent, reason=Consent.RevokedReason.RESIDENT, actor=request.user)
        revoked = Consent.objects.select_related("text", "partner").get(pk=revoked.pk)
        return Response(ConsentOutput(revoked).data)


class ConsentReceiptApi(APIView):
    permission_classes = [ReadScope]

    @extend_schema(responses=dict, operation_id="consents_receipt", tags=["consent"])
    def get(self, request, pk: int):
        consent = _own_consent(request, pk)
        response = Response(consent_receipt(consent=consent))
        response["Content-Disposition"] = f'attachment; filename="consent-{consent.pk}-receipt.json"'
        return response


class EnrolmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    partner = serializers.IntegerField(source="partner_id")
    consent = serializers.IntegerField(source="consent_id")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class FaceEnrolmentApi(APIView):
    """POST multipart `photo` + `partner`: enrol your face. GET: your enrolments and their status.

    The upload is kept in memory only (InMemoryOnlyUploadHandler, installed before anything -
    authentication included - reads the body)."""

    parser_classes = [MultiPartParser]

    def get_permissions(self):
        return _by_method(self.request)

    def initialize_request(self, request, *args, **kwargs):
        self.upload_handler = InMemoryOnlyUploadHandler(request, max_bytes=settings.FACE_PHOTO_MAX_BYTES)
        request.upload_handlers = [self.upload_handler]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(responses=EnrolmentOutput(many=True), operation_id="biometrics_face_list", tags=["consent"])
    def get(self, request):
        resident = resident_of(request)
        return Response(EnrolmentOutput(selectors.enrolment_list(resident_id=resident.pk), many=True).data)

    @extend_schema(request=None, responses={202: EnrolmentOutput}, operation_id="biometrics_face_enrol",
                   tags=["consent"])
    def post(self, request):
        resident = resident_of(request)
        photo = request.data.get("photo")  # parses the body (if authentication has not already)
        if self.upload_handler.too_large:
            raise PhotoProblem(PhotoRejected(
                413, "too_large", f"At most {settings.FACE_PHOTO_MAX_BYTES} bytes are accepted."))
        if photo is None or not hasattr(photo, "read"):
            raise exceptions.ValidationError({"photo": ["Attach the photo as multipart field 'photo'."]})
        try:
            partner = Partner.objects.get(pk=int(request.data.get("partner", "")))
        except (ValueError, Partner.DoesNotExist):
            raise exceptions.ValidationError({"partner": ["Unknown partner."]}) from None
        try:
            enrolment = services.face_enrol(
                resident_id=resident.pk, partner=partner, photo=photo.read(),
                content_type=photo.content_type or "", actor=request.user, source_ip=client_ip(request),
            )
        except PhotoRejected as rejected:
            raise PhotoProblem(rejected) from None
        except services.ConsentRequired:
            raise ConsentRequiredProblem() from None
        except services.PartnerKeyMissing:
            raise PartnerKeyMissingProblem() from None
        return Response(EnrolmentOutput(enrolment).data, status=status.HTTP_202_ACCEPTED)


class DataExportApi(APIView):
    """Right of access: everything this service holds about you, readable (JSON)."""

    permission_classes = [ReadScope]

    @extend_schema(responses=dict, operation_id="me_data_export", tags=["me"])
    def get(self, request):
        resident = resident_of(request)
        consents = selectors.consent_list(resident_id=resident.pk)
        receipts = selectors.deletion_receipts_for(resident_id=resident.pk)
        data = {
            "resident": {
                "ref": user_ref(request.user), "full_name": resident.full_name, "phone": resident.phone,
                "email": resident.email, "company": resident.company_id, "created_at": resident.created_at,
            },
            "consents": ConsentOutput(consents, many=True).data,
            "consent_texts": {c.text.sha256: {"version": c.text.version, "language": c.text.language,
                                              "body": c.text.body} for c in consents},
            "face_enrolments": EnrolmentOutput(selectors.enrolment_list(resident_id=resident.pk), many=True).data,
            "deletion_receipts": [
                {"partner": r.partner_id, "deletion_id": r.deletion_id, "confirmed_at": r.confirmed_at}
                for r in receipts
            ],
        }
        record(
            action=Action.RESIDENT_DATA_EXPORT, outcome=Outcome.SUCCESS, actor_kind=ActorKind.RESIDENT,
            actor_ref=user_ref(request.user), object_type="resident", company_id=resident.company_id,
        )
        response = Response(data)
        response["Content-Disposition"] = 'attachment; filename="my-data.json"'
        return response
