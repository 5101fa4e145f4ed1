"""The project's URLs plus a bare Django JSON view: the baseline the decision endpoint is compared to."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from smarthome.urls import urlpatterns as project_urlpatterns


@csrf_exempt
def bare(request):
    return JsonResponse({"decision": "allow", "reason": "granted", "decision_id": "0" * 32, "ttl_s": 60})


urlpatterns = [path("bench/bare", bare), *project_urlpatterns]
