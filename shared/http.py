"""HTTP entrypoint for every service: JSON in and out, the error envelope,
body limits, request ids, metrics, and one listener per process.

nameko's own WebServer binds one socket per container; with SO_REUSEPORT
several services started by one `nameko run` would each get a random share
of connections and 404 the others' routes. Here every container in a process
registers its routes with one listener per bind address instead, which
speaks HTTP/1.1 through shared/httpwire.py rather than eventlet.wsgi.
"""
import json
import logging
import time
import uuid
from functools import partial

import eventlet
import redis
import sqlalchemy.exc
from marshmallow import ValidationError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, parse_address
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from shared import httpwire, metrics, openapi
from shared.config import setting
from shared.errors import ApiError

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"

# Connection failures of PostgreSQL or Redis: the caller may retry (503).
DEPENDENCY_DOWN = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                   redis.ConnectionError, redis.TimeoutError)


def json_response(status, payload, headers=None):
    return Response(
        json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str),
        status=status, headers=headers, mimetype="application/json")


def error_response(error, request_id=None):
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return json_response(error.status, error.envelope(), headers)


class _Listener:
    """One listening socket shared by every container of this process."""

    def __init__(self, address):
        self.address = address
        self.servers = []
        self.sock = None
        self.gt = None
        self.url_map = Map()
        self.exact = {}

    def attach(self, server):
        self.servers.append(server)
        self._rebuild()
        if self.sock is None:
            self.sock = eventlet.listen(self.address)
            self.sock.settimeout(None)
            self.gt = eventlet.spawn(self._accept)
        self.max_body = max(int(setting(s.container.config, "MAX_BODY_BYTES"))
                            for s in self.servers)

    def detach(self, server):
        if server in self.servers:
            self.servers.remove(server)
        self._rebuild()
        if not self.servers and self.sock is not None:
            self.gt.kill()
            self.sock.close()
            self.sock = None
            _listeners.pop(self.address, None)

    def _rebuild(self):
        url_map, seen, exact = Map(), set(), {}
        for server in self.servers:
            for provider in server.providers:
                key = (provider.url, provider.method)
                if key in seen:  # same platform route from another service
                    continue
                seen.add(key)
                rule = provider.get_url_rule()
                rule.endpoint = provider
                url_map.add(rule)
                if "<" not in provider.url:  # a fixed path: no need for werkzeug's matcher
                    exact[(provider.method, provider.url)] = provider
        self.url_map, self.exact = url_map, exact

    def _accept(self):
        host, port = self.sock.getsockname()[:2]
        while True:
            try:
                sock, addr = self.sock.accept()
            except OSError as exc:  # e.g. out of file descriptors: keep listening
                log.warning("accept failed: %s", exc)
                eventlet.sleep(0.1)
                continue
            eventlet.spawn(httpwire.serve_connection, sock, addr, self, host, str(port),
                           self.max_body, _refusal)

    def __call__(self, environ, start_response):
        request = Request(environ)
        fixed = self.exact.get((environ["REQUEST_METHOD"], environ.get("PATH_INFO")))
        try:
            if fixed is not None:  # most requests (scans, check-ins) take this path
                provider, values = fixed, {}
            else:
                provider, values = self.url_map.bind_to_environ(environ).match()
        except MethodNotAllowed:
            response = error_response(ApiError("method_not_allowed", "method not allowed"))
        except HTTPException:
            # NotFound, and werkzeug's redirects for "//" or a missing
            # trailing slash: no such route here, never a 500
            response = error_response(ApiError("not_found", "no such route"))
        else:
            request.path_values = values
            response = provider.handle_request(request)
        return response(environ, start_response)


def _refusal(error):
    response = error_response(error)
    return response.status, response.headers.to_wsgi_list(), response.get_data()


_listeners = {}


class ProcessWebServer(WebServer):
    def __init__(self):
        super().__init__()
        self.providers = []

    def register_provider(self, provider):
        self.providers.append(provider)

    def unregister_provider(self, provider):
        if provider in self.providers:
            self.providers.remove(provider)

    def start(self):
        addr = parse_address(setting(self.container.config, "WEB_SERVER_ADDRESS"))
        self._listener = _listeners.get(addr)
        if self._listener is None:
            self._listener = _listeners[addr] = _Listener(addr)
        self._listener.attach(self)

    def stop(self):
        self._listener.detach(self)
        super(WebServer, self).stop()  # skip nameko's own socket handling

    def kill(self):
        self._listener.detach(self)


class ApiEntrypoint(HttpRequestHandler):
    """`@api(method, path, ...)`: an HTTP route described for OpenAPI."""

    server = ProcessWebServer()

    def __init__(self, method, url, summary="", auth=None, body=None, query=None,
                 responses=None, errors=(), tag=None, **kwargs):
        self.spec = openapi.Route(
            method=method, path=url, summary=summary, auth=auth, body=body,
            query=query, responses=responses or {}, errors=tuple(errors), tag=tag)
        openapi.register(self.spec)
        # an ApiError is an answer, not a fault: nameko logs it as expected
        kwargs.setdefault("expected_exceptions", ApiError)
        super().__init__(method, url, **kwargs)

    def setup(self):
        self.max_body = int(setting(self.container.config, "MAX_BODY_BYTES"))
        self.route_label = "%s %s" % (self.method, self.url)
        super().setup()

    def handle_request(self, request):
        started = time.perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        request_id = request_id[:64]
        request.route = self.spec
        request.max_body = self.max_body
        try:
            length = request.content_length
            if length is not None and length > self.max_body:
                raise ApiError("too_large", "request body exceeds %d bytes" % self.max_body)
            event = eventlet.event.Event()
            self.container.spawn_worker(
                self, (request,), request.path_values,
                context_data={"request_id": request_id},
                handle_result=partial(self.handle_result, event))
            result = event.wait()
            response = self.response_from_result(result)
        except ApiError as exc:
            response = error_response(exc)
        except DEPENDENCY_DOWN:
            log.warning("a dependency failed on %s", self.route_label, exc_info=True)
            response = error_response(ApiError("unavailable", "a dependency is unavailable; retry"))
        except Exception:  # a bug, never bad input: log it, keep the body generic
            log.exception("unhandled error on %s", self.route_label)
            response = error_response(ApiError("internal", "internal error"))
        response.headers[REQUEST_ID_HEADER] = request_id
        metrics.observe_http(self.route_label, response.status_code,
                             time.perf_counter() - started)
        return response

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        status, payload = result if isinstance(result, tuple) else (200, result)
        return json_response(status, payload)


api = ApiEntrypoint.decorator


def read_json(request):
    """The request body as JSON, or bad_json / too_large."""
    data = request.get_data(cache=True)
    if len(data) > request.max_body:
        raise ApiError("too_large", "request body exceeds %d bytes" % request.max_body)
    if not data:
        raise ApiError("bad_json", "a JSON body is required")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("bad_json", "the body is not valid JSON")


def validate(schema, data):
    """Load `data` with a marshmallow schema; ValidationError -> 400."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ApiError("validation_error", "the request is invalid",
                       fields=_field_messages(exc.messages))


def _field_messages(messages):
    if isinstance(messages, dict):
        flat = {}
        for key, value in messages.items():
            if isinstance(value, dict):
                for sub, msgs in _field_messages(value).items():
                    flat["%s.%s" % (key, sub)] = msgs
            else:
                flat[str(key)] = value if isinstance(value, list) else [str(value)]
        return flat
    return {"_schema": messages if isinstance(messages, list) else [str(messages)]}


_schema_instances = {}


def schema_instance(schema_class):
    """One instance per schema class: building a marshmallow schema deep-copies
    its fields (a sizeable share of a small request's CPU); loading through a
    shared instance is stateless."""
    instance = _schema_instances.get(schema_class)
    if instance is None:
        instance = _schema_instances[schema_class] = schema_class()
    return instance


def body(request):
    """The validated JSON body of this route."""
    data = read_json(request)
    if not isinstance(data, dict):
        raise ApiError("validation_error", "the body must be a JSON object",
                       fields={"_schema": ["must be a JSON object"]})
    return validate(schema_instance(request.route.body), data)


def query(request):
    """The validated query string of this route."""
    return validate(schema_instance(request.route.query), request.args.to_dict())


def authorization(request, scheme):
    """The credential after `Authorization: <scheme> `, or unauthenticated."""
    header = request.headers.get("Authorization", "")
    prefix = scheme + " "
    if not header.startswith(prefix) or len(header) <= len(prefix):
        raise ApiError("unauthenticated", "missing %s credentials" % scheme)
    return header[len(prefix):].strip()
