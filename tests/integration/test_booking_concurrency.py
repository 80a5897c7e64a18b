"""No oversell: many concurrent POST /v1/bookings at the last units of a room
type night and of a venue slot, then the counters must reconcile with the
confirmed bookings in the database."""
import uuid

import eventlet
import requests

from tests.integration.test_booking_support import city, day, sql  # noqa: F401

REQUESTS = 60


def fire(city, bodies):
    """POST every body at once, each from its own tourist and key."""
    tokens = [city.tourist("游客%d" % i) for i in range(len(bodies))]

    def post(i):
        return requests.post(city.api.base + "/v1/bookings", json=bodies[i], timeout=30, headers={
            "Authorization": "Bearer " + tokens[i], "Idempotency-Key": uuid.uuid4().hex})

    return list(eventlet.GreenPool(len(bodies)).imap(post, range(len(bodies))))


def reconcile_rooms(database_url):
    """Every night's `sold` equals the confirmed stays covering it."""
    counters = dict(((rt, night), sold) for rt, night, sold, capacity in sql(
        database_url, "SELECT room_type, night, sold, capacity FROM room_nights"))
    expected = dict(((rt, night), n) for rt, night, n in sql(database_url, """
        SELECT b.room_type, n.night::date, count(*) FROM bookings b,
               generate_series(b.check_in, b.check_out - 1, interval '1 day') AS n(night)
        WHERE b.kind = 'hotel_stay' AND b.status <> 'cancelled' GROUP BY 1, 2"""))
    assert {k: v for k, v in counters.items() if v} == expected
    assert sql(database_url, "SELECT count(*) FROM room_nights WHERE sold > capacity") == [(0,)]


def test_last_rooms_of_a_night_are_sold_exactly_once(city, database_url):
    # 3 standard rooms; one is already sold for the first night: 2 left
    warmup = city.book(city.tourist(), city.stay(nights=1, guests=((999, "早鸟"),)))
    assert warmup.status_code == 201
    results = fire(city, [city.stay(nights=2, guests=((i, "客人"),)) for i in range(REQUESTS)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 2, codes
    assert codes.count(409) == REQUESTS - 2
    assert {r.json()["error"] for r in results if r.status_code == 409} == {"sold_out"}
    reconcile_rooms(database_url)
    assert sql(database_url, "SELECT sold FROM room_nights WHERE room_type = '标准间' "
                             "ORDER BY night") == [(3,), (2,)]
    assert sql(database_url, "SELECT count(*) FROM bookings WHERE status = 'confirmed'") == [(3,)]
    # refused requests left nothing behind: no people, no events beyond the 3 bookings
    assert sql(database_url, "SELECT count(*) FROM booking_people") == [(3,)]
    assert sql(database_url, "SELECT count(*) FROM outbox WHERE event_type = "
                             "'booking.confirmed'") == [(3,)]


def test_overlapping_stays_never_oversell_any_night(city, database_url):
    bodies = [city.stay(check_in=day(1 + i % 3), nights=1 + i % 2, guests=((i, "客人"),))
              for i in range(REQUESTS)]
    results = fire(city, bodies)
    assert {r.status_code for r in results} <= {201, 409}
    assert any(r.status_code == 201 for r in results)
    reconcile_rooms(database_url)
    assert sql(database_url, "SELECT max(sold) FROM room_nights WHERE room_type = '标准间'") \
        == [(3,)]


def test_last_tickets_of_a_slot_are_sold_exactly_once(city, database_url):
    # slot "am" has a quota of 5; two are already taken: 3 left
    assert city.book(city.tourist(), city.ticket(visitors=((900, "甲"), (901, "乙")))) \
        .status_code == 201
    results = fire(city, [city.ticket(visitors=((i, "游客"),)) for i in range(REQUESTS)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 3, codes
    assert codes.count(409) == REQUESTS - 3
    assert {r.json()["error"] for r in results if r.status_code == 409} == {"sold_out"}
    confirmed = sql(database_url, "SELECT coalesce(sum(party_size), 0) FROM bookings "
                                  "WHERE kind = 'venue_ticket' AND status = 'confirmed'")[0][0]
    assert confirmed == 5
    assert sql(database_url, "SELECT sold, capacity FROM slot_days WHERE slot = 'am'") == [(5, 5)]
    assert sql(database_url, "SELECT sold FROM venue_days") == [(5,)]
    assert sql(database_url, "SELECT count(*) FROM ticket_holders") == [(5,)]


def test_daily_capacity_caps_all_slots_together(city, database_url):
    # daily capacity 8 over two slots of 5: 60 requests spread over both slots
    results = fire(city, [city.ticket(slot=("am", "pm")[i % 2], visitors=((i, "游客"),))
                          for i in range(REQUESTS)])
    assert [r.status_code for r in results].count(201) == 8
    assert sql(database_url, "SELECT sold FROM venue_days") == [(8,)]
    assert sql(database_url, "SELECT sum(sold) FROM slot_days") == [(8,)]


def test_the_database_itself_refuses_an_oversell(city, database_url):
    import psycopg2
    city.book(city.tourist(), city.stay(nights=1))
    try:
        sql(database_url, "UPDATE room_nights SET sold = capacity + 1")
    except psycopg2.errors.CheckViolation:
        pass
    else:
        raise AssertionError("the CHECK constraint let an oversell through")


def test_parties_sharing_id_numbers_never_deadlock(city, database_url):
    """Concurrent parties with overlapping visitors, listed in opposite orders:
    each ID gets at most one ticket, and every refusal is a clean 409."""
    venue_id = city.venue(slots=None, daily=1000, kind="park", policy="multi")
    pairs = [(i % 4, (i + 1) % 4) for i in range(REQUESTS)]  # each pair in both orders
    bodies = [city.ticket(slot=None, venue_id=venue_id, visitors=(
        ((a, "甲"), (b, "乙")) if (i // 4) % 2 else ((b, "乙"), (a, "甲"))))
        for i, (a, b) in enumerate(pairs)]
    results = fire(city, bodies)
    assert {r.status_code for r in results} <= {201, 409}, [r.text for r in results
                                                             if r.status_code not in (201, 409)]
    assert {r.json()["error"] for r in results if r.status_code == 409} <= {"limit_exceeded"}
    assert 1 <= [r.status_code for r in results].count(201) <= 2
    assert sql(database_url, "SELECT count(*), count(DISTINCT id_hash) FROM ticket_holders") \
        == [(2 * [r.status_code for r in results].count(201),) * 2]
