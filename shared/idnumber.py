"""Chinese resident ID numbers (GB 11643): validate, hash with a key, mask.

Raw numbers exist only inside a request; what is stored, cached, logged or
returned is the keyed hash (to look up) and the masked form (to show).
"""
import datetime
import hashlib
import hmac
import re

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
FORMAT = re.compile(r"^[1-9][0-9]{16}[0-9X]$")
PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")


def normalise(number):
    return (number or "").strip().upper()


def check_character(first17):
    return CHECK[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def problem(number, today=None):
    """Why `number` is not a valid resident ID number, or None if it is."""
    number = normalise(number)
    if not FORMAT.match(number):
        return "must be 17 digits followed by a digit or X"
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return "contains an impossible birth date"
    today = today or datetime.date.today()
    if born > today or born.year < 1880:
        return "contains an impossible birth date"
    if check_character(number[:17]) != number[17]:
        return "check character does not match"
    return None


def is_valid(number):
    return problem(number) is None


def id_hash(key, number, id_type="resident"):
    """Keyed hash used for every lookup by ID number."""
    message = ("%s:%s" % (id_type, normalise(number))).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def mask(number):
    number = normalise(number)
    if len(number) <= 7:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:] if len(number) > 10 \
        else number[:2] + "*" * (len(number) - 4) + number[-2:]


def mask_name(name):
    """张三 -> 张*, 欧阳娜娜 -> 欧阳**, Smith -> S****."""
    name = (name or "").strip()
    if len(name) <= 1:
        return name
    keep = 2 if len(name) >= 4 and all("\u4e00" <= c <= "\u9fff" for c in name) else 1
    return name[:keep] + "*" * (len(name) - keep)
