"""One green thread does a piece of work while others asking for the same
key wait for it: at a venue's opening every lane's first scan misses the same
cached records at once, and without this each one fetches them itself."""
import eventlet
from eventlet.event import Event


class SingleFlight:
    def __init__(self, wait_seconds):
        self.wait_seconds = wait_seconds
        self._flights = {}

    def lead(self, key, work):
        """Run `work()` unless another green thread is running it for `key`:
        then wait until it has finished (at most `wait_seconds`), and return
        None without running it. Returns (led, what work returned or None)."""
        flight = self._flights.get(key)
        if flight is not None:
            # the leader's outcome is its own (it may have failed, or judged
            # its own scan): a follower only learns that the work is done
            with eventlet.Timeout(self.wait_seconds, False):
                flight.wait()
            return False, None
        flight = self._flights[key] = Event()
        try:
            return True, work()
        finally:
            del self._flights[key]
            flight.send(True)
