"""Stable error codes, their HTTP status, and the JSON error envelope.

One table: every service raises `ApiError(code, message, fields)` and the HTTP
entrypoint turns it into `{"error", "message", "fields"}` with the status
below. ApiError is registered with nameko so it crosses RPC intact.
"""
from nameko.exceptions import deserialize_to_instance

STATUS = {
    "bad_request": 400,
    "bad_json": 400,
    "validation_error": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "sold_out": 409,
    "idempotency_conflict": 409,
    "limit_exceeded": 409,
    "already_cancelled": 409,
    "not_cancellable": 409,
    "already_checked_in": 409,
    "wrong_hotel": 409,
    "not_today": 409,
    "cancelled": 409,
    "identity_mismatch": 409,
    "no_room_ready": 409,
    "not_in_house": 409,
    "annul_refused": 409,
    "conflict": 409,
    "length_required": 411,
    "too_large": 413,
    "uri_too_long": 414,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "headers_too_large": 431,
    "internal": 500,
    "unavailable": 503,
}


@deserialize_to_instance
class ApiError(Exception):
    """An error with a stable code. Its args are (code, message, fields) so
    that nameko can rebuild it on the calling side of an RPC."""

    def __init__(self, code, message="", fields=None):
        if code not in STATUS:
            raise ValueError("unknown error code %r" % code)
        super().__init__(code, message, fields)
        self.code = code
        self.message = message or code.replace("_", " ")
        self.fields = fields

    @property
    def status(self):
        return STATUS[self.code]

    def envelope(self):
        body = {"error": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


def not_found(what="resource"):
    return ApiError("not_found", "%s not found" % what)
