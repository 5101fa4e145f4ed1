"""Resident API of the consent app, mounted under /api/v1/ (one class per resource operation)."""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext, gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiRequest, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from consent import selectors, services
from consent.data_export import data_export_build, data_export_sections
from consent.models import FACE_PURPOSE, Consent, ConsentText
from consent.photos import PhotoRejected
from consent.receipts import consent_receipt, receipt_keyring
from consent.uploads import InMemoryOnlyUploadHandler
from core.api.resident import ResidentApi
from core.api.schema import problems
from core.api.serializers import BodySerializer, QuerySerializer, no_body
from core.crypto.signing import public_key_pem
from core.http.client_ip import client_ip
from core.security.identifiers import user_ref
from partners.models import Partner

DEFAULT_TEXT_LANGUAGE = "ru"  # the residents' language


class NotAResident(exceptions.PermissionDenied):
    problem_code = "not-a-resident"
    default_detail = gettext_lazy("This account is not a resident's.")


class ConsentRequiredProblem(exceptions.PermissionDenied):
    problem_code = "consent-required"
    default_detail = gettext_lazy("Give your consent to face processing by this partner first.")


class PartnerKeyMissingProblem(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    problem_code = "partner-key-missing"
    default_detail = gettext_lazy("This partner cannot receive face photos at the moment.")


class PhotoProblem(exceptions.APIException):
    def __init__(self, rejected: PhotoRejected):
        super().__init__(rejected.message)
        self.status_code = rejected.status
        self.problem_code = f"photo-{rejected.code.replace('_', '-')}"


# Reads need `history:read` or `consent:write`; writes `consent:write` (core/api/resident.py).
READ_SCOPES = ("history:read", "consent:write")
WRITE_SCOPES = ("consent:write",)


def resident_of(request):
    try:
        return request.user.resident
    except (ObjectDoesNotExist, AttributeError):
        raise NotAResident() from None


# Codes of consent.services' ValidationErrors that concern one input field.
_ERROR_FIELDS = {"text_not_applicable": "text_sha256"}


def _validation(error: DjangoValidationError):
    field = _ERROR_FIELDS.get(error.code, "non_field_errors")
    return exceptions.ValidationError({field: [serializers.ErrorDetail(error.messages[0], code=error.code)]})


class ConsentTextNotFound(exceptions.NotFound):
    problem_code = "consent-text-not-found"
    default_detail = gettext_lazy("There is no consent text for this partner, purpose and language.")


def accepted_languages(header: str) -> list[str]:
    """Primary language subtags of an Accept-Language header, most preferred first (q=0 dropped)."""
    ranked = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and primary != "*" and quality > 0:
            ranked.append((-quality, position, primary))
    return [primary for _q, _p, primary in sorted(ranked)]


class ConsentTextApi(ResidentApi):
    """The consent text the app shows before `POST consents`, and its SHA-256 to send back.

    One text per partner and purpose (optionally per management company), in Russian and
    English: `?language=` picks one (404 if the text has no such translation), else the first
    language of `Accept-Language` it has, else Russian. A partner that does not process faces
    for your management company is 404 like an unknown one."""

    required_scopes = {"GET": READ_SCOPES}

    class FilterSerializer(QuerySerializer):
        partner = serializers.IntegerField(min_value=1, help_text="The partner that will process your face")
        purpose = serializers.CharField(max_length=32, default=FACE_PURPOSE, trim_whitespace=False,
                                        help_text=f"What the consent is for (default {FACE_PURPOSE}); a purpose "
                                                  "without a text is 404")
        language = serializers.ChoiceField(choices=[code for code, _name in settings.LANGUAGES], required=False,
                                           help_text="Overrides Accept-Language")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentText"

        partner = serializers.IntegerField()
        partner_name = serializers.CharField()
        purpose = serializers.CharField()
        version = serializers.CharField(source="text.version")
        language = serializers.CharField(source="text.language")
        body = serializers.CharField(source="text.body", help_text="Show exactly this text")
        sha256 = serializers.CharField(source="text.sha256", help_text="Send it as `text_sha256` to POST consents")
        published_at = serializers.DateTimeField(source="text.created_at")
        languages = serializers.ListField(child=serializers.CharField(), help_text="Translations of this text")

    @extend_schema(
        operation_id="consent_texts_retrieve", tags=["consent"], parameters=[FilterSerializer],
        responses={200: OutputSerializer, **problems(404, s404="No text for this partner, purpose and language, or "
                                                         "the partner does not process your faces")},
    )
    def get(self, request):
        resident = resident_of(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        wanted = [params["language"]] if "language" in params else [
            *accepted_languages(request.headers.get("Accept-Language", "")), DEFAULT_TEXT_LANGUAGE]
        current = selectors.consent_text_current(partner_id=params["partner"], company_id=resident.company_id,
                                                 purpose=params["purpose"], languages=wanted)
        if current is None or ("language" in params and current.text.language != params["language"]):
            raise ConsentTextNotFound()
        data = {"partner": current.partner.pk, "partner_name": current.partner.name, "purpose": params["purpose"],
                "text": current.text, "languages": list(current.languages)}
        response = Response(self.OutputSerializer(data).data)
        response["Content-Language"] = current.text.language
        patch_vary_headers(response, ["Accept-Language"])
        return response


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


@extend_schema_field({"type": "string", "pattern": "^[0-9a-f]{64}$"})
class ConsentTextField(serializers.SlugRelatedField):
    """A consent text named by its SHA-256 (lower-case hex); an unknown one is 400 `does_not_exist`."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="sha256", queryset=ConsentText.objects.all(), **kwargs)


class ConsentListApi(ResidentApi):
    """GET: your consents (history included). POST: give a consent (scope consent:write)."""

    class ConsentGiveInputSerializer(BodySerializer):
        partner = serializers.PrimaryKeyRelatedField(queryset=Partner.objects.all())
        text_sha256 = ConsentTextField(help_text="SHA-256 of the consent text shown (GET consent-texts)")
        building = serializers.IntegerField(required=False, allow_null=True,
                                            help_text="Limit the consent to one building of the partner's contract")
        retention_until = serializers.DateTimeField(
            required=False, help_text="When the partner must delete the face; in the future and within the "
                                      "contract's retention period (default: the longest it allows)")

    required_scopes = {"GET": READ_SCOPES, "POST": WRITE_SCOPES}
    conflict_codes = frozenset({"consent_exists"})

    @extend_schema(responses=ConsentOutput(many=True), operation_id="consents_list", tags=["consent"])
    def get(self, request):
        resident = resident_of(request)
        consents = selectors.consent_list(resident_id=resident.pk)
        return Response(ConsentOutput(consents, many=True).data)

    @extend_schema(request=ConsentGiveInputSerializer, operation_id="consents_give", tags=["consent"],
                   responses={201: ConsentOutput, **problems(
                       400, 409,
                       s400="Invalid request; `partner` or `text_sha256` unknown (`does_not_exist`), the text is not "
                            "the one for this partner and purpose (`text_not_applicable`), the partner may not "
                            "process faces for your building (`no_face_contract`) or the retention is outside the "
                            "contract's (`bad_retention`)",
                       s409="A consent for this partner is already open (`/problems/consent-exists`)")})
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
            if error.code in self.conflict_codes:
                raise
            raise _validation(error) from None
        return Response(ConsentOutput(consent).data, status=status.HTTP_201_CREATED)


def _own_consent(request, pk) -> Consent:
    resident = resident_of(request)
    return get_object_or_404(Consent.objects.select_related("text", "partner"), pk=pk, resident_id=resident.pk)


class ConsentRevokeApi(ResidentApi):
    required_scopes = {"POST": WRITE_SCOPES}

    @extend_schema(request=None, responses=ConsentOutput, operation_id="consents_revoke", tags=["consent"])
    def post(self, request, pk: int):
        no_body(request)
        consent = _own_consent(request, pk)
        revoked = services.consent_revoke(consent=consent, reason=Consent.RevokedReason.RESIDENT, actor=request.user)
        revoked = Consent.objects.select_related("text", "partner").get(pk=revoked.pk)
        return Response(ConsentOutput(revoked).data)


class ConsentReceiptApi(ResidentApi):
    required_scopes = {"GET": READ_SCOPES}

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="consents_receipt", tags=["consent"],
                   summary="The consent's signed receipt (verify it with GET consents/receipt-keys)")
    def get(self, request, pk: int):
        consent = _own_consent(request, pk)
        response = Response(consent_receipt(consent=consent))
        response["Content-Disposition"] = f'attachment; filename="consent-{consent.pk}-receipt.json"'
        return response


@extend_schema_serializer(component_name="ReceiptPublicKey")
class ReceiptPublicKeyOutput(serializers.Serializer):
    algorithm = serializers.CharField()
    key_id = serializers.CharField()
    public_key_pem = serializers.CharField()
    status = serializers.ChoiceField(choices=["current", "retired"])


class ReceiptKeysApi(APIView):
    """`GET /api/v1/consents/receipt-keys`: the public keys consent receipts are verified with -
    the current one and the retired ones (no auth: they are public, like the audit key)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="ReceiptPublicKeys")
    class OutputSerializer(serializers.Serializer):
        keys = ReceiptPublicKeyOutput(many=True)

    @extend_schema(responses=OutputSerializer, operation_id="consents_receipt_keys", tags=["consent"])
    def get(self, request):
        keyring = receipt_keyring()
        keys = [
            {"algorithm": "Ed25519", "key_id": kid, "public_key_pem": public_key_pem(key),
             "status": "current" if kid == keyring.current_key_id else "retired"}
            for kid, key in keyring.public_keys().items()
        ]
        return Response(self.OutputSerializer({"keys": keys}).data)


class EnrolmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    partner = serializers.IntegerField(source="partner_id")
    consent = serializers.IntegerField(source="consent_id")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1, "maxLength": settings.FACE_PHOTO_MAX_BYTES})
class PhotoField(serializers.FileField):
    """The face photo part of the upload (its content is checked by consent.photos)."""


class FaceEnrolmentApi(ResidentApi):
    """POST multipart `photo` + `partner`: enrol your face. GET: your enrolments and their status.

    The photo is a JPEG or PNG of FACE_PHOTO_MIN_SIDE_PX to FACE_PHOTO_MAX_SIDE_PX a side and at
    most FACE_PHOTO_MAX_BYTES (413 `/problems/photo-too-large` above); another format is 415, an
    image that does not decode or is too small 400. The upload is kept in memory only
    (InMemoryOnlyUploadHandler, installed before anything - authentication included - reads the
    body)."""

    parser_classes = [MultiPartParser]
    required_scopes = {"GET": READ_SCOPES, "POST": WRITE_SCOPES}

    class InputSerializer(BodySerializer):  # any other form field is refused (400 naming it)
        class Meta:
            ref_name = "FaceEnrolmentRequest"

        photo = PhotoField(help_text="JPEG or PNG (see the operation)", error_messages={
            "required": "Attach the photo as multipart field 'photo'.",
            "invalid": "Attach the photo as multipart field 'photo'."})
        partner = serializers.IntegerField(min_value=1, help_text="The partner you gave your consent to")

    def initialize_request(self, request, *args, **kwargs):
        self.upload_handler = InMemoryOnlyUploadHandler(request, max_bytes=settings.FACE_PHOTO_MAX_BYTES)
        request.upload_handlers = [self.upload_handler]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(responses=EnrolmentOutput(many=True), operation_id="biometrics_face_list", tags=["consent"])
    def get(self, request):
        resident = resident_of(request)
        return Response(EnrolmentOutput(selectors.enrolment_list(resident_id=resident.pk), many=True).data)

    @extend_schema(
        request={"multipart/form-data": OpenApiRequest(
            InputSerializer, encoding={"photo": {"contentType": "image/jpeg, image/png"}})},
        operation_id="biometrics_face_enrol", tags=["consent"],
        responses={202: EnrolmentOutput, **problems(
            400, 403, 409, 413, 415,
            s400="Invalid form, unknown partner, or a photo that does not decode or is too small",
            s403="Missing scope, no active consent for this partner (`/problems/consent-required`), or not a "
                 "resident",
            s409="The partner cannot receive photos now (`/problems/partner-key-missing`)",
            s413="The photo is larger than FACE_PHOTO_MAX_BYTES (`/problems/photo-too-large`)",
            s415="Not a JPEG or PNG (`/problems/photo-unsupported-type`)")},
    )
    def post(self, request):
        resident = resident_of(request)
        data = request.data  # parses the body (if authentication has not already)
        if self.upload_handler.too_large:
            raise PhotoProblem(PhotoRejected(
                413, "too_large", f"At most {settings.FACE_PHOTO_MAX_BYTES} bytes are accepted."))
        form = self.InputSerializer(data=data)
        form.is_valid(raise_exception=True)
        photo = form.validated_data["photo"]
        try:
            partner = Partner.objects.get(pk=form.validated_data["partner"])
        except Partner.DoesNotExist:
            raise exceptions.ValidationError(
                {"partner": [serializers.ErrorDetail(gettext("Unknown partner."), code="does_not_exist")]}) from None
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


class DataExportOutput(serializers.Serializer):
    """The export's schema: one property per registered section (consent.data_export)."""

    class Meta:
        ref_name = "DataExport"

    def get_fields(self):
        return {section.name: serializers.JSONField(help_text=section.description, read_only=True)
                for section in data_export_sections()}


class DataExportApi(ResidentApi):
    """Right of access: everything this service holds about you, readable (JSON).

    One property per section that the apps register (consent.data_export): your profile,
    residencies, grants, cars, guest passes, notifications, remote opens, history, consents and
    the texts agreed to, face enrolments and deletion receipts. Personal data in clear, never a
    secret, token or ciphertext. Recorded as `resident.data_export`."""

    required_scopes = {"GET": READ_SCOPES}

    @extend_schema(responses={200: DataExportOutput, **problems(401, 403)}, operation_id="me_data_export",
                   tags=["me"])
    def get(self, request):
        resident = resident_of(request)
        data = data_export_build(resident_id=resident.pk)
        record(
            action=Action.RESIDENT_DATA_EXPORT, outcome=Outcome.SUCCESS, actor_kind=ActorKind.RESIDENT,
            actor_ref=user_ref(request.user), object_type="resident", company_id=resident.company_id,
        )
        response = Response(data)
        response["Content-Disposition"] = 'attachment; filename="my-data.json"'
        return response
