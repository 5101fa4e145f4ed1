"""/api/v1/notifications - what partners reported that concerns the resident (scope `history:read`)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from access.api.base import ResidentApi, paginated, problems
from access.selectors.notifications import notification_for_resident, notifications_for_resident
from access.services.notifications import notification_mark_read
from core.api.pagination import PageQuerySerializer, StandardPagination
from core.api.serializers import QuerySerializer, no_body

SCOPES = ("history:read",)


class NotificationOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Notification"

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="e.g. face.opened, guest.arrived")
    device_id = serializers.IntegerField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    read = serializers.SerializerMethodField()
    read_at = serializers.DateTimeField(allow_null=True)
    data = serializers.DictField(help_text="Codes and ids only")

    def get_read(self, obj) -> bool:
        return obj.read_at is not None


class NotificationListApi(ResidentApi):
    required_scopes = {"GET": SCOPES}

    class FilterSerializer(QuerySerializer):
        unread = serializers.BooleanField(required=False, allow_null=True, default=None,
                                          help_text="true: only unread; false: only read")

    @extend_schema(operation_id="notifications_list", tags=["notifications"],
                   parameters=[FilterSerializer, PageQuerySerializer],
                   responses={200: paginated(NotificationOutputSerializer, "NotificationPage"), **problems(404)})
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = notifications_for_resident(resident=self.resident, unread=filters.validated_data.get("unread"))
        paginator = StandardPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(NotificationOutputSerializer(page, many=True).data)


class NotificationReadApi(ResidentApi):
    required_scopes = {"POST": SCOPES}

    @extend_schema(operation_id="notifications_mark_read", tags=["notifications"], request=None,
                   responses={200: NotificationOutputSerializer})
    def post(self, request, notification_id: int):
        no_body(request)
        notification = notification_for_resident(resident=self.resident, notification_id=notification_id)
        return Response(NotificationOutputSerializer(notification_mark_read(notification=notification)).data)
