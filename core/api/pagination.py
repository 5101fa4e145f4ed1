"""The one pagination style of the APIs: `?page=N&page_size=M` (default 50, at most 200).

Both parameters are validated like any other input (400 naming the parameter: not a number, out
of range, a control character); a page past the last one is 404. List operations declare them
with `parameters=[PageQuerySerializer]`.
"""

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination

from core.api.serializers import QuerySerializer

MAX_PAGE_SIZE = 200


class PageQuerySerializer(QuerySerializer):
    page = serializers.IntegerField(required=False, min_value=1, help_text="1-based; past the last page: 404")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE,
                                         help_text="Default 50")


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        PageQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        return super().paginate_queryset(queryset, request, view)
