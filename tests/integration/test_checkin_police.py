"""Police registration on the real servers: one registration per guest in
the check-in's transaction, delivered by the background worker; while the
police link is down nothing is lost, and it all goes once the link returns."""
import pytest
from sqlalchemy import create_engine, select

from shared.config import setting
from shared.idnumber import id_hash
from tests.factories import put_credential, valid_id_number

from services.checkin import models
from services.checkin.service import CheckinService
from test_checkin_support import BatchPoliceLink, FlakyPoliceLink, Hotel, wait_for


def registrations(config):
    engine = create_engine(config["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"),
                           connect_args={"options": "-csearch_path=checkin"})
    try:
        with engine.connect() as conn:
            regs = conn.execute(select(models.registrations).order_by(models.registrations.c.id)
                                ).mappings().all()
            sent = conn.execute(select(models.police_deliveries)).mappings().all()
        return [dict(r) for r in regs], [dict(r) for r in sent]
    finally:
        engine.dispose()


FAST_RETRY = {"POLICE_POLL_SECONDS": "0.05", "POLICE_RETRY_BASE": "0.05"}


def test_local_link_records_every_guest(config, start_services):
    api = start_services(CheckinService, extra_config=FAST_RETRY)
    hotel = Hotel(config, api)
    holder, companion = valid_id_number(300), valid_id_number(301)
    hotel.booking(id_numbers=(holder, companion), names=("王小明", "李四"))
    r = hotel.check_in({"medium": "id_card", "value": companion})
    assert r.status_code == 201, r.text
    stay_id = r.json()["stay_id"]
    regs = wait_for(lambda: [x for x in registrations(config)[0] if x["status"] == "delivered"]
                    if len(registrations(config)[1]) == 2 else None)
    assert [x["guest_no"] for x in regs] == [1, 2]
    assert all(x["stay_id"] == stay_id and x["room"] == r.json()["room"] for x in regs)
    assert regs[0]["name_masked"] == "王**" and not regs[0]["id_checked"]
    # the card read at the desk is the companion's: masked number, checked
    assert regs[1]["id_checked"] and regs[1]["id_masked"] == companion[:6] + "********" + companion[-4:]
    assert regs[1]["foreign_guest"] is False
    sent = registrations(config)[1]
    assert all(companion not in str(s["payload"]) for s in sent)


def test_foreign_guest_by_passport(config, start_services):
    api = start_services(CheckinService, extra_config=FAST_RETRY)
    hotel = Hotel(config, api)
    record = hotel.booking()
    # booking hashes a passport number with id type "passport"
    record["id_hashes"] = [id_hash(setting(config, "ID_HASH_KEY"), "E12345678", "passport")]
    put_credential(config, record)
    r = hotel.check_in({"medium": "code", "value": record["code"], "id_number": "E12345678"})
    assert r.status_code == 201, r.text
    regs = wait_for(lambda: [x for x in registrations(config)[0] if x["status"] == "delivered"])
    assert regs[0]["foreign_guest"] is True and regs[0]["id_checked"]


@pytest.fixture
def flaky_link():
    FlakyPoliceLink.down = True
    FlakyPoliceLink.received = []
    yield FlakyPoliceLink
    FlakyPoliceLink.down = False


def test_registration_survives_a_police_link_outage(config, start_services, flaky_link):
    api = start_services(CheckinService, extra_config=dict(
        FAST_RETRY, POLICE_LINK="test_checkin_support:FlakyPoliceLink"))
    hotel = Hotel(config, api)
    stays = []
    for seq in range(3):
        number = valid_id_number(310 + seq)
        hotel.booking(id_numbers=(number,))
        r = hotel.check_in({"medium": "id_card", "value": number})
        assert r.status_code == 201, r.text   # check-in never waits for the police link
        stays.append(r.json()["stay_id"])
    # the worker keeps trying and backing off; nothing is delivered, nothing lost
    wait_for(lambda: any(x["attempts"] >= 2 for x in registrations(config)[0]))
    regs = registrations(config)[0]
    assert len(regs) == 3 and {x["status"] for x in regs} == {"pending"}
    assert {x["last_error"] for x in regs if x["attempts"]} == {"ConnectionError"}
    assert flaky_link.received == []
    flaky_link.down = False
    wait_for(lambda: {x["status"] for x in registrations(config)[0]} == {"delivered"})
    assert sorted(m["stay_id"] for m in flaky_link.received) == sorted(stays)
    assert len(flaky_link.received) == 3


def test_a_backlog_goes_out_in_one_batch(config, start_services, flaky_link):
    """After an outage the due registrations go in one send_batch call, and
    the failed batch backed off as a whole (every row counted an attempt)."""
    BatchPoliceLink.batches = []
    api = start_services(CheckinService, extra_config=dict(
        FAST_RETRY, POLICE_LINK="test_checkin_support:BatchPoliceLink"))
    hotel = Hotel(config, api)
    numbers = [valid_id_number(330), valid_id_number(331)]
    hotel.booking(id_numbers=tuple(numbers), names=("王小明", "李四"))
    assert hotel.check_in({"medium": "id_card", "value": numbers[0]}).status_code == 201
    wait_for(lambda: all(x["attempts"] >= 1 for x in registrations(config)[0]))
    assert {x["last_error"] for x in registrations(config)[0]} == {"ConnectionError"}
    flaky_link.down = False
    wait_for(lambda: {x["status"] for x in registrations(config)[0]} == {"delivered"})
    assert BatchPoliceLink.batches == [2]
    assert sorted(m["guest_no"] for m in flaky_link.received) == [1, 2]
