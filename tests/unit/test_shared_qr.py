import base64
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import qr
from shared.config import DEFAULTS

KEY = qr.signing_key(DEFAULTS["QR_SIGNING_KEY"])
PUBLIC = qr.verifying_key(qr.public_key_hex(KEY))
CID = str(uuid.uuid4())
NOW = 1_800_000_000.0


def test_round_trip_and_expiry():
    code, expires = qr.issue(KEY, CID, now=NOW)
    assert qr.verify(PUBLIC, code, now=NOW) == ("ok", CID)
    assert qr.verify(PUBLIC, code, now=expires) == ("ok", CID)
    assert qr.verify(PUBLIC, code, now=expires + qr.TOLERANCE_SECONDS + 1) == ("expired_code", None)
    assert qr.verify(PUBLIC, code, now=NOW - 60) == ("expired_code", None)
    assert expires - NOW <= 60


def _raw(code):
    text = code[len(qr.PREFIX):]
    return bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def _code(raw):
    return qr.PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_tampered_truncated_and_resigned_codes():
    code, _ = qr.issue(KEY, CID, now=NOW)
    raw = _raw(code)
    raw[5] ^= 1
    assert qr.verify(PUBLIC, _code(raw), now=NOW) == ("tampered", None)
    assert qr.verify(PUBLIC, code[:-4], now=NOW) == ("tampered", None)
    other, _ = qr.issue(Ed25519PrivateKey.generate(), CID, now=NOW)
    assert qr.verify(PUBLIC, other, now=NOW) == ("tampered", None)
    for junk in ["", "DY1.", "hello", "DY1.!!!!", None, 42]:
        assert qr.verify(PUBLIC, junk, now=NOW)[0] == "tampered"
