"""The seed CLI: an idempotent demo city with stable device keys, and a large
synthetic city, both through the admin API's catalogue functions."""
import io

from shared.devices import key_hash
from tests.integration.test_booking_support import day, sql, wait_for

from services.booking import seed
from services.booking.service import BookingService


def test_demo_city_is_idempotent_and_keys_are_stable(database_url, config, start_services, rpc):
    out = io.StringIO()
    engine = seed.prepare(database_url)
    first = seed.seed_demo(engine, config["ADMIN_TOKEN"], out=out)
    counts = {t: sql(database_url, "SELECT count(*) FROM %s" % t)[0][0]
              for t in ("hotels", "rooms", "venues", "venue_slots", "devices", "outbox")}
    second = seed.seed_demo(engine, config["ADMIN_TOKEN"], out=io.StringIO())
    assert first == second
    assert counts == {t: sql(database_url, "SELECT count(*) FROM %s" % t)[0][0] for t in counts}
    assert counts["hotels"] >= 20 and counts["venues"] == 3
    assert counts["outbox"] == counts["hotels"]  # one hotel.created each, not repeated
    text = out.getvalue()
    assert config["ADMIN_TOKEN"] in text and first["keys"]["故宫东门闸机"] in text

    districts = {d for (d,) in sql(database_url, "SELECT DISTINCT district FROM hotels")}
    assert {"和平区", "沈河区", "皇姑区", "大东区", "铁西区", "浑南区"} <= districts
    assert ("1201",) in sql(database_url, "SELECT room FROM rooms")
    museum = sql(database_url, "SELECT slot, quota FROM venue_slots v JOIN venues USING (venue_id) "
                               "WHERE name = '沈阳故宫博物院' ORDER BY slot")
    assert museum == [("am", 5000), ("pm", 5000)]
    policies = dict(sql(database_url, "SELECT name, entry_policy FROM venues"))
    assert policies == {"沈阳故宫博物院": "single", "北陵公园": "multi", "沈阳市图书馆": "single"}
    exits = sql(database_url, "SELECT count(*) FROM devices WHERE direction = 'out'")
    assert exits == [(2,)]

    # the service publishes the seeded events and knows the printed keys
    api = start_services(BookingService)
    wait_for(lambda: sql(database_url, "SELECT count(*) FROM outbox "
                                       "WHERE published_at IS NULL") == [(0,)])
    gate = rpc.booking.get_device(key_hash=key_hash(first["keys"]["北陵南门出口"]))
    assert gate["kind"] == "gate" and gate["direction"] == "out" and gate["active"]
    results = api.get("/v1/hotels/search", params={
        "check_in": day(1).isoformat(), "check_out": day(4).isoformat(), "guests": 2,
        "district": "沈河区"}).json()["results"]
    assert results and all(h["district"] == "沈河区" for h in results)


def test_synthetic_city(database_url):
    engine = seed.prepare(database_url)
    made = seed.seed_synthetic(engine, hotels_n=120, venues_n=12, fill=0.5, days=5,
                               out=io.StringIO())
    assert sql(database_url, "SELECT count(*) FROM hotels") == [(120,)]
    assert sql(database_url, "SELECT count(*) FROM venues") == [(12,)]
    assert sql(database_url, "SELECT count(*) FROM room_nights WHERE sold > capacity") == [(0,)]
    assert sql(database_url, "SELECT count(*) FROM room_nights")[0][0] > 0
    again = seed.seed_synthetic(engine, hotels_n=120, venues_n=12, fill=0.5, days=5,
                                out=io.StringIO())
    assert again == made and sql(database_url, "SELECT count(*) FROM hotels") == [(120,)]


def test_cli_entry_point(database_url, capsys):
    assert seed.main(["synthetic", "--hotels", "5", "--venues", "2",
                      "--database-url", database_url]) == 0
    assert "5 hotels" in capsys.readouterr().out
