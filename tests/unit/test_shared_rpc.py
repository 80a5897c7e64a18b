"""DeadlineCaller builds its RPC proxy on the first call only: readers inject
a caller into every worker, and most workers (cache hits) never call."""
from shared.rpc import DeadlineCaller


class _Reply:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Method:
    def __init__(self, name):
        self.name = name

    def call_async(self, **kwargs):
        return _Reply((self.name, kwargs))


class _Proxy:
    def __getattr__(self, name):
        return _Method(name)


def test_proxy_is_built_on_first_call_and_once():
    built = []

    def make():
        built.append(1)
        return _Proxy()

    caller = DeadlineCaller(make, "booking", 1.0)
    assert built == []                      # injected, not called: no proxy
    assert caller.call("get_device", key_hash="h") == ("get_device", {"key_hash": "h"})
    assert caller.call("get_venue", venue_id="v") == ("get_venue", {"venue_id": "v"})
    assert built == [1]


def test_a_ready_proxy_is_used_as_given():
    caller = DeadlineCaller(_Proxy(), "booking", 1.0)
    assert caller.call("ping") == ("ping", {})
