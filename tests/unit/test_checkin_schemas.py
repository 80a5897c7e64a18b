"""Check-in request validation: media, ID numbers, face consent."""
import pytest
from marshmallow import ValidationError

from services.checkin.schemas import CheckinRequest, ConditionRequest, id_kind

ID = "11010519491231002X"


def load(**body):
    return CheckinRequest().load(body)


def test_id_card_defaults():
    data = load(medium="id_card", value=ID)
    assert data["face"] is None and data["payment_mode"] == "deposit" and data["started_at"] is None


@pytest.mark.parametrize("body, field", [
    ({"medium": "id_card", "value": "110105194912310021"}, "value"),
    ({"medium": "id_card", "value": ID, "face": {"consent": False, "score": 0.9}}, "face"),
    ({"medium": "id_card", "value": ID, "face": {"score": 0.9}}, "face"),
    ({"medium": "code", "value": "AB12", "id_number": "12345"}, "id_number"),
    ({"medium": "qr", "value": ""}, "value"),
    ({"medium": "id_card", "value": ID, "started_at": "2026-11-29T10:00:00"}, "started_at"),
])
def test_refused(body, field):
    with pytest.raises(ValidationError) as err:
        CheckinRequest().load(body)
    assert field in err.value.messages
    assert ID[:17] not in str(err.value.messages)


def test_id_kind():
    assert id_kind(ID) == "resident" and id_kind(ID.lower()) == "resident"
    assert id_kind("E12345678") == "passport"
    assert id_kind("123456789") is None and id_kind("") is None


def test_condition_values():
    assert ConditionRequest().load({"condition": "out_of_order"})
    with pytest.raises(ValidationError):
        ConditionRequest().load({"condition": "OOO"})
