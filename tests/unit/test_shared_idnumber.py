import datetime

import pytest

from shared import idnumber


@pytest.mark.parametrize("number", ["11010519491231002X", "440524188001010014", "11010519491231002x"])
def test_valid_numbers(number):
    assert idnumber.problem(number) is None


@pytest.mark.parametrize("number,why", [
    ("110105194912310021", "check character"),
    ("11010519491331002X", "birth date"),
    ("1101051949123100", "17 digits"),
    ("01010519491231002X", "17 digits"),
    ("", "17 digits"),
    ("11010530001231002X", "birth date"),
])
def test_invalid_numbers(number, why):
    assert why in idnumber.problem(number, today=datetime.date(2026, 1, 1))


def test_hash_is_keyed_and_case_insensitive():
    a = idnumber.id_hash("k1", "11010519491231002X")
    assert a == idnumber.id_hash("k1", "11010519491231002x")
    assert a != idnumber.id_hash("k2", "11010519491231002X")
    assert "11010519491231002X" not in a


def test_masks():
    assert idnumber.mask("11010519491231002X") == "110105********002X"
    assert idnumber.mask_name("张三") == "张*"
    assert idnumber.mask_name("欧阳娜娜") == "欧阳**"
    assert idnumber.mask_name("Smith") == "S****"
