"""Structured JSON logs carrying the request id, and never an ID number.

The request id comes from the worker's nameko context data, which nameko
forwards on RPC calls and events, so one id follows a request across services.
"""
import json
import logging
import re
import threading

from nameko.extensions import DependencyProvider

_local = threading.local()  # green-thread local once eventlet has patched threading

# 17 digits plus a digit or X (GB 11643), anywhere in a message: masked whatever
# code path produced it.
ID_NUMBER = re.compile(r"(?<![0-9])([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9])")


def scrub(text):
    return ID_NUMBER.sub(r"\1********\2", text)


def current_request_id():
    return getattr(_local, "request_id", None)


def set_request_id(request_id):
    """Log lines of this green thread carry `request_id` from now on."""
    _local.request_id = request_id


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        request_id = current_request_id()
        if request_id:
            entry["request_id"] = scrub(request_id)  # it comes from a caller's header
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(level="INFO", stream=None):
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RequestContext(DependencyProvider):
    """Puts the worker's request id where the log formatter finds it."""

    def worker_setup(self, worker_ctx):
        _local.request_id = worker_ctx.context_data.get("request_id")

    def worker_teardown(self, worker_ctx):
        _local.request_id = None

    def get_dependency(self, worker_ctx):
        return worker_ctx.context_data.get("request_id")
