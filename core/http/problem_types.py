"""Problem type slugs by status: the vocabulary of the service's problem documents (docs/api.md).

Django-free, so that core/nginx.py can give nginx's own error responses the same types.
"""

PROBLEM_CONTENT_TYPE = "application/problem+json"

# status -> stable problem type slug
PROBLEM_TYPES = {
    400: "validation-error",
    401: "not-authenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable",
    429: "rate-limited",
    500: "server-error",
    502: "bad-gateway",
    503: "service-unavailable",
    504: "gateway-timeout",
}
