"""The city-wide search query against a brute-force answer computed in Python
from the same tables, on a generated city with many full nights."""
import datetime
import itertools

from sqlalchemy.orm import Session

from shared.clock import city_today
from tests.integration.test_booking_support import sql

from services.booking import inventory, seed


def reference(database_url, check_in, check_out, guests, district=None, max_price=None):
    """Every qualifying hotel, in the documented order."""
    types = sql(database_url, "SELECT rt.hotel_id, h.name, h.district, rt.room_type, rt.price, "
                              "rt.max_guests, rt.total FROM room_types rt "
                              "JOIN hotels h USING (hotel_id)")
    counters = {}
    for hotel_id, room_type, night, capacity, sold in sql(
            database_url, "SELECT hotel_id, room_type, night, capacity, sold FROM room_nights "
                          "WHERE night >= %s AND night < %s", (check_in, check_out)):
        counters.setdefault((hotel_id, room_type), []).append(capacity - sold)
    hotels = {}
    for hotel_id, name, dist, room_type, price, max_guests, total in types:
        if max_guests < guests or (district and dist != district):
            continue
        if max_price is not None and price > max_price:
            continue
        free = min([total] + counters.get((hotel_id, room_type), []))
        if free <= 0:
            continue
        entry = hotels.setdefault(hotel_id, {"hotel_id": hotel_id, "name": name,
                                             "district": dist, "room_types": []})
        entry["room_types"].append({"room_type": room_type, "available": free,
                                    "price": float(price), "max_guests": max_guests})
    for entry in hotels.values():
        entry["room_types"].sort(key=lambda rt: (rt["price"], rt["room_type"]))
    return sorted(hotels.values(), key=lambda h: (h["room_types"][0]["price"], h["name"],
                                                  h["hotel_id"]))


def test_search_matches_brute_force(database_url):
    engine = seed.prepare(database_url)
    seed.seed_synthetic(engine, hotels_n=150, venues_n=2, fill=0.6, days=6, seed=11,
                        out=open("/dev/null", "w"))
    today = city_today()
    checked = nonempty = 0
    with Session(engine) as session:
        for start, nights, guests, district, max_price in itertools.product(
                (0, 2), (1, 3), (1, 3), (None, "和平区"), (None, 400)):
            check_in = today + datetime.timedelta(days=start)
            check_out = check_in + datetime.timedelta(days=nights)
            expected = reference(database_url, check_in, check_out, guests, district, max_price)
            nonempty += bool(expected)
            got, offset = [], 0
            while offset is not None:
                page = inventory.search(session, check_in, check_out, guests, district=district,
                                        max_price=max_price, limit=7, offset=offset)
                got += page["results"]
                offset = page["next_offset"]
            assert got == expected, (check_in, nights, guests, district, max_price)
            checked += 1
    assert checked == 32 and nonempty >= 24  # the cases must mean something
