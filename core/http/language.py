"""The language of the machine lane's answers (the partner API): Accept-Language, negotiated.

The browser stack has Django's LocaleMiddleware (Accept-Language or the portal's language cookie;
Russian by default). The machine lane (core/http/lanes.py) skips it, and its only texts are the
`title` and `detail` of problem documents. This middleware negotiates the language only when a
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
