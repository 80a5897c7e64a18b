"""Dynamic QR codes: Ed25519-signed credential id plus a time step.

Booking signs with the private key; gates and desks verify with the public key
alone. A code names a 30-second step and is accepted for about a minute, so a
screenshot goes stale; the signature makes a forged or edited code `tampered`.

Wire form: "DY1." + base64url(version | credential id (16 bytes) | step (u32) | signature (64)).
"""
import base64
import struct
import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PREFIX = "DY1."
VERSION = 1
STEP_SECONDS = 30
VALID_STEPS = 2          # a code lives two steps: 30 to 60 s after it was shown
TOLERANCE_SECONDS = 5    # clock drift between phone and gate
_BODY = struct.Struct(">B16sI")


def signing_key(seed_hex):
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))


def public_key_hex(private_key):
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def verifying_key(public_hex):
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))


def step_of(ts):
    return int(ts // STEP_SECONDS)


def issue(private_key, credential_id, now=None):
    """(code, expires_at_epoch) for a credential at time `now`."""
    now = time.time() if now is None else now
    step = step_of(now)
    body = _BODY.pack(VERSION, uuid.UUID(credential_id).bytes, step)
    raw = body + private_key.sign(body)
    code = PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return code, (step + VALID_STEPS) * STEP_SECONDS


def verify(public_key, code, now=None):
    """("ok", credential_id) or ("tampered" | "expired_code", None)."""
    now = time.time() if now is None else now
    if not isinstance(code, str) or not code.startswith(PREFIX):
        return "tampered", None
    text = code[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return "tampered", None
    if len(raw) != _BODY.size + 64:
        return "tampered", None
    body, signature = raw[:_BODY.size], raw[_BODY.size:]
    try:
        public_key.verify(signature, body)
    except InvalidSignature:
        return "tampered", None
    version, cid, step = _BODY.unpack(body)
    if version != VERSION:
        return "tampered", None
    start = step * STEP_SECONDS
    if now + TOLERANCE_SECONDS < start:  # from the future: a skewed or forged clock
        return "expired_code", None
    if now > start + VALID_STEPS * STEP_SECONDS + TOLERANCE_SECONDS:
        return "expired_code", None
    return "ok", str(uuid.UUID(bytes=cid))
