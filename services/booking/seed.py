"""Load a city into booking's database.

    python -m services.booking.seed demo [--database-url URL]
    python -m services.booking.seed synthetic --hotels 1000 --venues 100 [--fill 0.3]
                                              [--days 30] [--seed 7] [--database-url URL]

Both create the schema first and are idempotent (ids are derived from names or
from the random seed; existing rows are skipped). They write through the same
catalogue functions as the admin API; hotel.created events wait in the outbox
until the booking service runs. Demo device keys are derived from ADMIN_TOKEN
and the device name, so every run prints the same keys.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import random
import sys
import time
import uuid

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared import events
from shared.clock import city_today
from shared.config import setting
from shared.database import create_schema, engine_for
from shared.devices import key_hash
from services.booking import catalogue
from services.booking.models import (SCHEMA, devices, hotels, metadata, outbox, room_nights,
                                     venues)

NAMESPACE = uuid.UUID("5b0a7c1e-2f4d-4c8e-9a51-0d1c9e6a7b33")


def stable_id(*parts):
    return uuid.uuid5(NAMESPACE, "/".join(parts)).hex


def emit(session, event_type, payload):
    """The seed's outbox writer (the service's relay publishes the rows)."""
    session.execute(insert(outbox).values(event_type=event_type,
                                          payload=events.envelope(event_type, payload)))


def demo_key(admin_token, device_name):
    digest = hmac.new(admin_token.encode(), ("demo-device:" + device_name).encode(),
                      hashlib.sha256).digest()
    return "dk_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


# -- the demo city ----------------------------------------------------------

DEMO_VENUES = [
    {"name": "沈阳故宫博物院", "kind": "museum", "daily_capacity": 10000,
     "instantaneous_capacity": 3000, "entry_policy": "single",
     "slots": [{"slot": "am", "start": "08:30", "end": "12:00", "quota": 5000},
               {"slot": "pm", "start": "12:00", "end": "16:30", "quota": 5000}],
     "gates": [("故宫东门闸机", "in"), ("故宫西门闸机", "in")]},
    {"name": "北陵公园", "kind": "park", "daily_capacity": 60000,
     "instantaneous_capacity": 20000, "entry_policy": "multi",
     "gates": [("北陵南门入口", "in"), ("北陵南门出口", "out"), ("北陵东门入口", "in"),
               ("北陵东门出口", "out")]},
    {"name": "沈阳市图书馆", "kind": "library", "daily_capacity": 3000,
     "instantaneous_capacity": 1200, "entry_policy": "single",
     "gates": [("图书馆大厅闸机", "in")]},
]

DISTRICTS = ["和平区", "沈河区", "皇姑区", "大东区", "铁西区", "浑南区", "于洪区"]
DEMO_HOTELS = [
    ("东北大厦", "沈河区"), ("盛京宾馆", "沈河区"), ("中街客栈", "沈河区"), ("故宫旁精品酒店", "沈河区"),
    ("太原街大酒店", "和平区"), ("沈阳站商务酒店", "和平区"), ("西塔国际酒店", "和平区"),
    ("北陵公园酒店", "皇姑区"), ("皇姑屯宾馆", "皇姑区"), ("崇山路快捷酒店", "皇姑区"),
    ("大东门饭店", "大东区"), ("东塔宾馆", "大东区"), ("万泉公园酒店", "大东区"),
    ("铁西工人村酒店", "铁西区"), ("劳动公园宾馆", "铁西区"), ("兴华街商务酒店", "铁西区"),
    ("浑南会展中心酒店", "浑南区"), ("奥体中心酒店", "浑南区"), ("浑河畔度假酒店", "浑南区"),
    ("于洪广场酒店", "于洪区"), ("沈阳北站商旅酒店", "皇姑区"), ("青年大街公寓酒店", "沈河区"),
]
ROOM_TYPES = [("标准间", 1.0, 2), ("大床房", 1.1, 2), ("家庭房", 1.6, 4), ("套房", 2.5, 3)]


def demo_hotel_spec(index, name, district):
    """Deterministic room types, prices and numbered rooms (e.g. 1201)."""
    base = 220 + (index * 37) % 300
    kinds = ROOM_TYPES[:2 + index % 3]
    room_types_, floor = [], 8 + index % 8
    for k, (room_type, factor, guests) in enumerate(kinds):
        count = 6 if k < 2 else 3
        rooms_ = ["%d%02d" % (floor + k, n + 1) for n in range(count)]
        room_types_.append({"room_type": room_type, "price": round(base * factor),
                            "max_guests": guests, "rooms": rooms_})
    return {"hotel_id": stable_id("hotel", name), "name": name, "district": district,
            "room_types": room_types_}


def seed_demo(engine, admin_token, out=None):
    out = out or sys.stdout
    with Session(engine) as session, session.begin():
        hotel_specs = [demo_hotel_spec(i, n, d) for i, (n, d) in enumerate(DEMO_HOTELS)]
        have = catalogue.existing(session, hotels, hotels.c.hotel_id,
                                  {h["hotel_id"] for h in hotel_specs})
        catalogue.add_hotels(session, emit, [h for h in hotel_specs if h["hotel_id"] not in have])
        venue_specs = [dict(v, venue_id=stable_id("venue", v["name"])) for v in DEMO_VENUES]
        have = catalogue.existing(session, venues, venues.c.venue_id,
                                  {v["venue_id"] for v in venue_specs})
        catalogue.add_venues(session, [v for v in venue_specs if v["venue_id"] not in have])

        device_specs = []
        for v in venue_specs:
            device_specs += [{"name": name, "kind": "gate", "venue_id": v["venue_id"],
                              "direction": direction, "target": v["name"]}
                             for name, direction in v["gates"]]
        for h in hotel_specs:
            device_specs += [{"name": h["name"] + kind_name, "kind": kind, "hotel_id": h["hotel_id"],
                              "target": h["name"]}
                             for kind, kind_name in (("desk", "前台"), ("kiosk", "自助机"),
                                                     ("lock", "门锁"))]
        have = catalogue.existing(session, devices, devices.c.device_id,
                                  {stable_id("device", d["name"]) for d in device_specs})
        keys = []
        for d in device_specs:
            key, device_id = demo_key(admin_token, d["name"]), stable_id("device", d["name"])
            if device_id not in have:
                catalogue.add_device(session, d, key_hash(key), device_id=device_id)
            keys.append((d, key))

    print("Duoyou demo city: %d hotels, %d venues, %d devices"
          % (len(hotel_specs), len(venue_specs), len(keys)), file=out)
    print("Admin token: %s   (Authorization: Bearer <token>)" % admin_token, file=out)
    for v in venue_specs:
        print("venue %s  %s" % (v["venue_id"], v["name"]), file=out)
    print("Demo device keys (Authorization: Device <key>):", file=out)
    for d, key in keys:
        if d["kind"] == "gate" or d.get("hotel_id") == hotel_specs[0]["hotel_id"]:
            print("  %-6s %-4s %-16s %s" % (d["kind"], d.get("direction") or "",
                                             d["name"], key), file=out)
    print("  (desk, kiosk and lock keys of the other hotels follow the same rule: "
          "services.booking.seed.demo_key(ADMIN_TOKEN, name))", file=out)
    return {"hotels": [h["hotel_id"] for h in hotel_specs],
            "venues": [v["venue_id"] for v in venue_specs],
            "keys": {d["name"]: key for d, key in keys}}


# -- the synthetic city -----------------------------------------------------

def synthetic_hotel(rng, i):
    district = DISTRICTS[i % len(DISTRICTS)]
    kinds = ROOM_TYPES[:2 + rng.randrange(3)]
    base = rng.randrange(150, 900)
    specs = []
    for k, (room_type, factor, guests) in enumerate(kinds):
        floor = 2 + k * 3
        specs.append({"room_type": room_type, "price": round(base * factor), "max_guests": guests,
                      "rooms": ["%d%02d" % (floor + n // 20, n % 20 + 1)
                                for n in range(rng.randrange(5, 31))]})
    return {"hotel_id": "%032x" % rng.getrandbits(128), "name": "合成酒店%04d" % i,
            "district": district, "room_types": specs}


def synthetic_venue(rng, i):
    kind = ("park", "museum", "library")[i % 3]
    daily = rng.randrange(1000, 50000)
    spec = {"venue_id": "%032x" % rng.getrandbits(128), "name": "合成场馆%03d" % i,
            "kind": kind, "daily_capacity": daily, "instantaneous_capacity": daily // 3,
            "entry_policy": "multi" if kind == "park" else "single"}
    if kind == "museum":
        spec["slots"] = [{"slot": "am", "start": "09:00", "end": "12:00", "quota": daily // 2},
                         {"slot": "pm", "start": "12:00", "end": "17:00", "quota": daily // 2}]
    return spec


def seed_synthetic(engine, hotels_n, venues_n, fill=0.3, days=30, seed=7, out=None):
    """A big city for benchmarks; `fill` presells that share of room nights
    over the next `days` (some types fully sold) so searches must filter."""
    out = out or sys.stdout
    started = time.perf_counter()
    rng = random.Random(seed)
    hotel_specs = [synthetic_hotel(rng, i) for i in range(hotels_n)]
    venue_specs = [synthetic_venue(rng, i) for i in range(venues_n)]
    today = city_today()
    with Session(engine) as session, session.begin():
        have = catalogue.existing(session, hotels, hotels.c.hotel_id,
                                  {h["hotel_id"] for h in hotel_specs})
        new_hotels = [h for h in hotel_specs if h["hotel_id"] not in have]
        for start in range(0, len(new_hotels), 250):
            catalogue.add_hotels(session, emit, new_hotels[start:start + 250])
        have = catalogue.existing(session, venues, venues.c.venue_id,
                                  {v["venue_id"] for v in venue_specs})
        catalogue.add_venues(session, [v for v in venue_specs if v["venue_id"] not in have])
        counters = []
        for h in new_hotels:
            for rt in h["room_types"]:
                total = len(rt["rooms"])
                for d in range(days):
                    if rng.random() < fill:
                        sold = total if rng.random() < 0.3 else rng.randrange(total + 1)
                        counters.append({"hotel_id": h["hotel_id"], "room_type": rt["room_type"],
                                         "night": today + datetime.timedelta(days=d),
                                         "capacity": total, "sold": sold})
        for start in range(0, len(counters), 5000):
            session.execute(pg_insert(room_nights).on_conflict_do_nothing(),
                            counters[start:start + 5000])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE booking.hotels, booking.room_types, booking.room_nights")
    print("synthetic city: %d hotels (%d new), %d venues, %d presold room nights in %.1f s"
          % (hotels_n, len(new_hotels), venues_n, len(counters), time.perf_counter() - started),
          file=out)
    return {"hotels": [h["hotel_id"] for h in hotel_specs],
            "venues": [v["venue_id"] for v in venue_specs]}


def prepare(database_url):
    from psycogreen.eventlet import patch_psycopg  # harmless outside eventlet
    patch_psycopg()
    engine = engine_for(database_url, SCHEMA)
    create_schema(engine, SCHEMA, metadata)
    return engine


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.booking.seed")
    parser.add_argument("--database-url", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the Shenyang-like demo city")
    demo.add_argument("--database-url", default=None)
    synth = sub.add_parser("synthetic", help="a large generated city for benchmarks")
    synth.add_argument("--database-url", default=None)
    synth.add_argument("--hotels", type=int, default=1000)
    synth.add_argument("--venues", type=int, default=100)
    synth.add_argument("--fill", type=float, default=0.3)
    synth.add_argument("--days", type=int, default=30)
    synth.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    url = args.database_url or setting(None, "DATABASE_URL")
    _ensure_database(url)
    engine = prepare(url)
    if args.command == "demo":
        seed_demo(engine, setting(None, "ADMIN_TOKEN"))
    else:
        seed_synthetic(engine, args.hotels, args.venues, args.fill, args.days, args.seed)
    return 0


def _ensure_database(url):
    """Create the database itself when it is missing (first `make run`)."""
    import psycopg2
    from psycopg2 import sql
    name = url.rsplit("/", 1)[1].split("?")[0]
    try:
        psycopg2.connect(url, connect_timeout=3).close()
        return
    except psycopg2.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise SystemExit("PostgreSQL is not reachable: %s" % exc)
    conn = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
