"""The integration API for the developer's systems (tenant-core): /integration/v1/.

- `POST /integration/v1/records` - a batch of up to MASTERDATA_BATCH_MAX records (a JSON array,
  or NDJSON: one record per line), applied by masterdata.services.records; answers each record's
  result (created / updated / unchanged / stale / deleted / error with field errors).
- `POST /integration/v1/reconciliation` - the source's ids and versions of one building's
  records; answers which of them differ here, which are missing here, and which records of
  that building we hold that the source did not list.

Callers: OAuth2 client-credentials tokens with the scope `masterdata:write`, of a client named
in MASTERDATA_CLIENTS (masterdata.clients) - never a partner's application. Served on the
public TLS listener by the public pool; bearer tokens only (no session, so no CSRF).
"""

import json

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer, extend_schema
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions, serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import MissingScope
from core.api.schema import problems
from core.api.serializers import BodySerializer, input_errors
from core.security.identifiers import pseudonymous_ref
from masterdata.clients import SCOPE, integration_client
from masterdata.models import Entity
from masterdata.records import SERIALIZERS, RecordHeader, external_id
from masterdata.selectors import building_reconciliation
from masterdata.services.records import RESULTS, records_apply

TAGS = ["integration"]


class NotAnIntegrationClient(exceptions.PermissionDenied):
    problem_code = "not-an-integration-client"
    default_detail = "This client is not configured to write master data."


class IsIntegrationClient(BasePermission):
    """A token with `masterdata:write` of a configured integration client (request.integration_client)."""

    def has_permission(self, request, view):
        token = request.auth
        if token is None or not hasattr(token, "allow_scopes"):
            raise exceptions.NotAuthenticated()
        if not token.allow_scopes([SCOPE]):
            raise MissingScope(SCOPE)
        client = integration_client(token.application)
        if client is None:
            raise NotAnIntegrationClient()
        request.integration_client = client
        return True


class BearerAuthentication(OAuth2Authentication):
    """django-oauth-toolkit's bearer token check, without its look at the body as a form: DRF
    would parse a whole batch (and hold it twice, past DATA_UPLOAD_MAX_MEMORY_SIZE) before the
    caller is known. The token is read from the Authorization header of the plain request."""

    def authenticate(self, request):
        return super().authenticate(request._request)


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "masterdata.api.BearerAuthentication"
    name = "integrationClientCredentials"

    def get_security_definition(self, auto_schema):
        return {
            "type": "oauth2",
            "description": "Client-credentials token of a service client named in MASTERDATA_CLIENTS (never a "
                           "partner's application), over the public TLS listener.",
            "flows": {"clientCredentials": {"tokenUrl": "/o/token/", "scopes": {
                SCOPE: "Write buildings, flats, residents, residencies and cars of the client's companies"}}},
        }

    def get_security_requirement(self, auto_schema):
        return {self.name: [SCOPE]}


class JsonArrayParser(BaseParser):
    """application/json, read from the stream (DRF's own JSON parser reads `request.body`,
    which Django caps at DATA_UPLOAD_MAX_MEMORY_SIZE; BodySizeLimitMiddleware has applied the
    integration API's own limit before)."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return None
        try:
            return json.load(stream)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError("The body is not JSON.") from exc


class NdjsonParser(BaseParser):
    """application/x-ndjson: one JSON value per line. A line that is no JSON becomes a marker
    the batch reports as that record's error (the other lines go ahead)."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None):
        records = []
        for number, line in enumerate(stream or (), start=1):
            text = line.strip()
            if not text:
                continue
            try:
                records.append(json.loads(text))
            except (ValueError, UnicodeDecodeError):
                records.append(_Unparsable(number))
        return records


class _Unparsable(dict):
    """A line of NDJSON that is not JSON (an empty object to the validation, which says so)."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line


class IntegrationApi(APIView):
    authentication_classes = [BearerAuthentication]
    parser_classes = [JsonArrayParser]
    permission_classes = [IsIntegrationClient]

    def actor_ref(self) -> str:
        return pseudonymous_ref("client", self.request.integration_client.client_id)


# --- the batch ----------------------------------------------------------------------------------

RECORD_EXAMPLES = [
    {"type": "company", "id": "TC-17", "version": 3, "name": "УК «Северный квартал»"},
    {"type": "building", "id": "B-1", "version": 1, "company": "TC-17", "name": "Корпус 2",
     "address": "Москва, ул. Полярная, 7", "timezone": "Europe/Moscow"},
    {"type": "unit", "id": "U-1-101", "version": 1, "building": "B-1", "number": "101"},
    {"type": "resident", "id": "R-5001", "updated_at": "2026-11-30T09:00:00Z", "company": "TC-17",
     "full_name": "Иванова Мария Петровна", "phone": "+79160000001", "email": "m.ivanova@example.ru"},
    {"type": "residency", "id": "RS-9001", "version": 2, "resident": "R-5001", "unit": "U-1-101",
     "kind": "owner", "valid_from": "2026-12-01", "valid_until": None},
    {"type": "vehicle", "id": "V-77", "version": 1, "resident": "R-5001", "plate": "А123ВС77", "label": ""},
    {"type": "residency", "id": "RS-8000", "version": 7, "deleted": True},
]

Record = PolymorphicProxySerializer(
    component_name="MasterDataRecord",
    serializers={str(entity): serializer for entity, serializer in SERIALIZERS.items()},
    resource_type_field_name="type",
    many=True,
)


class RecordResultSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MasterDataRecordResult"

    class FieldErrorSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MasterDataFieldError"

        field = serializers.CharField(help_text="The record's field ('' for the record as a whole)")
        code = serializers.CharField(help_text="e.g. required, invalid, unknown_field, forbidden_character, "
                                               "unknown_reference, company_not_allowed, fixed, duplicate_phone, "
                                               "plate_taken, delete_not_supported")
        detail = serializers.CharField()

    index = serializers.IntegerField(help_text="The record's position in the request (0-based)")
    type = serializers.CharField()
    id = serializers.CharField()
    result = serializers.ChoiceField(choices=RESULTS)
    errors = FieldErrorSerializer(many=True, required=False)


class BatchOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MasterDataBatchResult"

    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Records per result")
    allowlist_patches = serializers.IntegerField(help_text="Allowlist patches queued for the partners")
    results = RecordResultSerializer(many=True)


class RecordBatchApi(IntegrationApi):
    parser_classes = [JsonArrayParser, NdjsonParser]

    @extend_schema(
        operation_id="masterdata_records_apply", tags=TAGS,
        summary="Upsert or delete a batch of records by the source's ids and versions",
        request={"application/json": Record, "application/x-ndjson": Record},
        examples=[OpenApiExample("A batch", value=RECORD_EXAMPLES, request_only=True)],
        responses={200: BatchOutputSerializer, **problems(400, 401, 403, 413, 415)},
    )
    def post(self, request):
        records = request.data
        if isinstance(records, dict) and not isinstance(records, _Unparsable):
            # a batch is an array (or NDJSON lines): an object's keys are none the operation knows
            raise serializers.ValidationError(input_errors(records, known=set())
                                              or {"non_field_errors": ["A batch is a JSON array of records."]})
        if not isinstance(records, list):
            raise serializers.ValidationError({"non_field_errors": ["A batch is a JSON array of records."]})
        limit = settings.MASTERDATA_BATCH_MAX
        if len(records) > limit:
            raise serializers.ValidationError(
                {"non_field_errors": [serializers.ErrorDetail(f"At most {limit} records per request.",
                                                              code="too_many_records")]})
        client = request.integration_client
        outcome = records_apply(source=client.source, companies=client.companies, records=_unmarked(records),
                                actor_ref=self.actor_ref())
        results = [result.as_dict() for result in outcome.results]
        for number, data in enumerate(records):
            if isinstance(data, _Unparsable):
                results[number]["errors"] = [{"field": "", "code": "parse_error",
                                              "detail": f"Line {data.line} is not JSON."}]
        return Response({"counts": outcome.counts, "allowlist_patches": outcome.allowlist_patches,
                         "results": results})


def _unmarked(records: list) -> list:
    return [None if isinstance(data, _Unparsable) else data for data in records]


# --- reconciliation -----------------------------------------------------------------------------


class ReconciliationApi(IntegrationApi):
    class InputSerializer(BodySerializer):
        class Meta:
            ref_name = "MasterDataReconciliationRequest"

        class ItemSerializer(RecordHeader):
            class Meta:
                ref_name = "MasterDataReconciliationItem"

            def get_fields(self):
                fields = super().get_fields()
                fields.pop("deleted")
                return fields

        building = external_id(help_text="The source's id of the building")
        records = ItemSerializer(many=True, max_length=100_000,
                                 help_text="Every record of the building the source holds: the building, its "
                                           "flats, their residencies, those residents and their cars")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MasterDataReconciliation"

        class ItemSerializer(serializers.Serializer):
            class Meta:
                ref_name = "MasterDataReconciliationEntry"

            type = serializers.ChoiceField(choices=Entity.choices)
            id = serializers.CharField()
            version = serializers.IntegerField(required=False, help_text="The version we hold")

        matching = serializers.IntegerField(help_text="Records whose version we hold too")
        differ = ItemSerializer(many=True, help_text="We hold another version (ours given): send the record again")
        missing = ItemSerializer(many=True, help_text="We hold no live record: send it")
        unexpected = ItemSerializer(many=True,
                                    help_text="We hold it for this building, the source did not list it: "
                                              "send its deletion (or its current version)")

    @extend_schema(
        operation_id="masterdata_reconciliation", tags=TAGS,
        summary="Compare the source's ids and versions of one building's records with ours",
        request=InputSerializer,
        responses={200: OutputSerializer, **problems(400, 401, 403, 404, 413, 415)},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client = request.integration_client
        answer = building_reconciliation(client=client, building=serializer.validated_data["building"],
                                         records=serializer.validated_data["records"])
        if answer is None:
            raise exceptions.NotFound("No building with this id has been received from this client's source.")
        return Response(answer)

