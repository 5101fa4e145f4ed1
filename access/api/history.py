"""GET /api/v1/history - the resident's own access events (scope `history:read`)."""

import datetime

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers

from access.api.base import ResidentApi, paginated, problems
from access.selectors.devices import device_for_resident
from access.selectors.history import history_for_resident
from core.api.pagination import PageQuerySerializer, StandardPagination
from core.api.serializers import QuerySerializer


class HistoryListApi(ResidentApi):
    """Opens, video sessions, changes of your cars and guest passes, and partners' access
    decisions about your cars, your face and your guests' passes; newest first, paginated.
    `since`/`until` are ISO dates or date-times (until is exclusive; a date means its start in
    UTC); with both, `until` must be after `since` (else 400 naming `until`); `device_id` one of
    your devices (else 404)."""

    required_scopes = {"GET": ("history:read",)}

    class FilterSerializer(QuerySerializer):
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        device_id = serializers.IntegerField(required=False, min_value=1)

        def to_internal_value(self, data):
            data = {key: _date_to_datetime(value) if key in ("since", "until") else value
                    for key, value in data.items()}
            return super().to_internal_value(data)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "HistoryEvent"

        id = serializers.IntegerField()
        occurred_at = serializers.DateTimeField()
        action = serializers.CharField(help_text="e.g. resident.open, resident.video, access.decision")
        outcome = serializers.CharField(help_text="success, denied, unavailable, ...")
        reason = serializers.CharField()
        object_type = serializers.CharField()
        device_ref = serializers.CharField(help_text="The partner's id of the device, if any")

    @extend_schema(operation_id="history_list", tags=["history"], parameters=[FilterSerializer, PageQuerySerializer],
                   responses={200: paginated(OutputSerializer, "HistoryPage"), **problems(
                       400, 404, s400="Invalid parameters, or `until` not after `since`",
                       s404="`device_id` is not one of your devices, or the page is past the last")})
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        device = None
        if "device_id" in params:
            device = device_for_resident(resident=self.resident, device_id=params["device_id"])
        if "since" in params and "until" in params and params["since"] >= params["until"]:
            raise exceptions.ValidationError(
                {"until": [serializers.ErrorDetail(gettext("until must be after since."), code="order")]})
        events = history_for_resident(
            user=request.user, resident=self.resident, since=params.get("since"), until=params.get("until"),
            device=device,
        )
        paginator = StandardPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


def _date_to_datetime(value):
    if isinstance(value, str) and len(value) == 10:
        try:
            day = datetime.date.fromisoformat(value)
        except ValueError:
            return value
        return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC).isoformat()
    return value
