"""The language of the partner pool's answers (the partner API): Accept-Language, negotiated.

The public pool has Django's LocaleMiddleware (Accept-Language or the portal's language cookie;
Russian by default). The partner pool (smarthome/settings/pools.py) has no cookies and skips it;
its only texts are the `title` and `detail` of problem documents. This middleware negotiates the language only when a
caller sends Accept-Language; a request without one - the usual partner call on the decision hot
path - costs one dictionary lookup and is answered in settings.LANGUAGE_CODE.
"""

from django.utils import translation


class AcceptLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_ACCEPT_LANGUAGE" not in request.META:
            return self.get_response(request)
        language = translation.get_language_from_request(request)
        with translation.override(language):
            response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response
