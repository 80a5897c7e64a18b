import logging

import pytest
from marshmallow import Schema, fields, validate

from shared import events, logs, openapi
from shared.errors import STATUS, ApiError
from shared.http import validate as validate_body


class Guest(Schema):
    name = fields.String(required=True)


class Order(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["a", "b"]))
    guests = fields.List(fields.Nested(Guest), required=True, validate=validate.Length(min=1))


def test_validation_error_flattens_field_paths():
    with pytest.raises(ApiError) as err:
        validate_body(Order(), {"kind": "c", "guests": [{}], "x": 1})
    assert err.value.code == "validation_error" and err.value.status == 400
    assert set(err.value.fields) == {"kind", "guests.0.name", "x"}


def test_error_codes_have_statuses():
    assert STATUS["sold_out"] == 409 and STATUS["too_large"] == 413
    with pytest.raises(ValueError):
        ApiError("no_such_code")


def test_api_error_survives_rpc_serialisation():
    from nameko.exceptions import deserialize, serialize
    again = deserialize(serialize(ApiError("sold_out", "gone", {"a": ["b"]})))
    assert isinstance(again, ApiError) and again.code == "sold_out" and again.fields == {"a": ["b"]}


def test_openapi_document_from_schemas(monkeypatch):
    # a private registry: the process-wide one must describe only real routes
    monkeypatch.setattr(openapi, "ROUTES", [])
    openapi.register(openapi.Route("POST", "/unit/orders/<order_id>", body=Order, auth="tourist",
                                   responses={201: Order}, errors=("sold_out",)))
    doc = openapi.document()
    assert list(doc["paths"]) == ["/unit/orders/{order_id}"]
    op = doc["paths"]["/unit/orders/{order_id}"]["post"]
    assert op["parameters"][0]["name"] == "order_id"
    assert {"201", "400", "401", "409", "413"} <= set(op["responses"])
    order = doc["components"]["schemas"]["Order"]
    assert order["properties"]["kind"]["enum"] == ["a", "b"]
    assert order["properties"]["guests"]["items"]["$ref"].endswith("/Guest")


def test_log_lines_never_carry_an_id_number():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "guest %s arrived", ("11010519491231002X",), None)
    line = logs.JsonFormatter().format(record)
    assert "11010519491231002X" not in line and "110105********002X" in line


def test_every_subscription_names_a_known_event():
    for source, event_type, consumer, method in events.SUBSCRIPTIONS:
        assert event_type in events.SOURCES[source]
        assert consumer != source


def test_a_redis_that_never_answers_fails_a_command_within_about_two_timeouts():
    """shared.redis.client_for's 0.5 s timeouts bound a command against a
    Redis that accepts connections but never answers (no retry loop with
    backoff stretching it to seconds at a gate)."""
    import socket
    import time

    import redis

    from shared.redis import client_for

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections (the kernel does), never answers
    try:
        client = client_for("redis://127.0.0.1:%d/0" % silent.getsockname()[1])
        started = time.monotonic()
        with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
            client.get("x")
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()
