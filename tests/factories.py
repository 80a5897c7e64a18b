"""Test data written the way booking writes it: device and credential records
in Redis. Lets entry and checkin tests exercise their Redis fast path without
starting booking (cache-miss tests start the real booking service)."""
import datetime
import json
import uuid

import redis as redis_lib

from shared import idnumber
from shared.clock import city_today
from shared.cacheaside import JsonCache
from shared.config import setting
from shared.credentials import CredentialCache, CredentialRecordSchema
from shared.devices import DEVICE_TTL, key_hash, new_key

VALID_IDS = ("11010519491231002X", "440524188001010014")


def valid_id_number(seq=1, born="19900101", area="110105"):
    """A GB 11643-valid number, different for each `seq`."""
    first17 = "%s%s%03d" % (area, born, seq % 1000)
    return first17 + idnumber.check_character(first17)


def _cache(config):
    client = redis_lib.Redis.from_url(config["REDIS_URL"], decode_responses=True)
    return client, config["REDIS_PREFIX"]


def put_device(config, kind, hotel_id=None, venue_id=None, direction="in", device_id=None):
    """Store a device record; returns its key."""
    client, prefix = _cache(config)
    key = new_key()
    record = {"device_id": device_id or uuid.uuid4().hex, "kind": kind, "hotel_id": hotel_id,
              "venue_id": venue_id, "direction": direction, "active": True}
    JsonCache(client, prefix).write(prefix + "device:" + key_hash(key), record, DEVICE_TTL)
    return key


def credential(config, target_type="venue", target_id=None, day=None, nights=1,
               id_numbers=(VALID_IDS[0],), names=("张三",), entry_policy="single",
               slot=None, slot_start=None, slot_end=None, room_type=None, status="active"):
    """A credential record as booking would write it (not yet stored)."""
    day = day or city_today(config)
    kind = "venue_ticket" if target_type == "venue" else "hotel_stay"
    until = day if kind == "venue_ticket" else day + datetime.timedelta(days=nights)
    key = setting(config, "ID_HASH_KEY")
    record = {
        "version": 1, "credential_id": str(uuid.uuid4()), "booking_id": uuid.uuid4().hex,
        "kind": kind, "target_type": target_type, "target_id": target_id or uuid.uuid4().hex,
        "code": uuid.uuid4().hex[:8].upper(), "valid_from": day.isoformat(),
        "valid_until": until.isoformat(), "slot": slot, "slot_start": slot_start,
        "slot_end": slot_end, "party_size": len(id_numbers),
        "entry_policy": entry_policy if kind == "venue_ticket" else None,
        "room_type": room_type, "holder_name_masked": idnumber.mask_name(names[0]),
        "id_hashes": [idnumber.id_hash(key, n) for n in id_numbers], "status": status,
    }
    return CredentialRecordSchema().load(record)


def put_credential(config, record):
    client, prefix = _cache(config)
    CredentialCache(client, prefix).put(record)
    return record


def qr_for(config, record, now=None):
    from shared import qr
    return qr.issue(qr.signing_key(setting(config, "QR_SIGNING_KEY")), record["credential_id"], now)[0]


def dumps(x):
    return json.dumps(x)


def wait_for(check, timeout=10.0, interval=0.02):
    """Poll `check()` until it returns something truthy, or fail the test."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(interval)
