"""shared.singleflight: concurrent callers with one key run the work once."""
import eventlet
import pytest

from shared.singleflight import SingleFlight


def test_one_green_thread_works_the_others_wait_for_it():
    flight, calls = SingleFlight(wait_seconds=2.0), []

    def work():
        calls.append(1)
        eventlet.sleep(0.05)
        return "built"

    threads = [eventlet.spawn(flight.lead, "venue-day", work) for _ in range(10)]
    results = [t.wait() for t in threads]
    assert calls == [1]
    assert results.count((True, "built")) == 1
    assert results.count((False, None)) == 9
    # once done, the next caller works again (nothing is cached here)
    assert flight.lead("venue-day", work) == (True, "built") and len(calls) == 2


def test_other_keys_do_not_wait_and_a_failing_leader_fails_alone():
    flight = SingleFlight(wait_seconds=2.0)

    def fails():
        eventlet.sleep(0.05)
        raise RuntimeError("database down")

    leader = eventlet.spawn(flight.lead, "a", fails)
    eventlet.sleep(0)
    follower = eventlet.spawn(flight.lead, "a", lambda: "never")
    other = eventlet.spawn(flight.lead, "b", lambda: "b built")
    assert other.wait() == (True, "b built")
    assert follower.wait() == (False, None)
    with pytest.raises(RuntimeError):
        leader.wait()


def test_a_follower_waits_at_most_wait_seconds():
    flight = SingleFlight(wait_seconds=0.05)
    eventlet.spawn(flight.lead, "slow", lambda: eventlet.sleep(1))
    eventlet.sleep(0)
    started = eventlet.hubs.get_hub().clock()
    assert flight.lead("slow", lambda: "never") == (False, None)
    assert eventlet.hubs.get_hub().clock() - started < 0.5
