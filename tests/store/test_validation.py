"""ID and phone number checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.store import ValidationError
from gateway.store.validation import (
    check_card_number,
    normalize_id_number,
    normalize_phone,
)
from web_security.id_numbers import id_check_char

from .factories import id_number


def test_valid_id_number_is_normalised_to_upper_case_x() -> None:
    assert normalize_id_number(" 11010519491231002x ") == "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("440305199001011234", "check digit is wrong (expected X)"),
        ("44030519900101123", "must be 18 characters"),
        ("4403051990010112345", "must be 18 characters"),
        ("44030519900101123Y", "digit or X"),
        ("440305199002301234", "birth date 19900230 is not a real date"),
        ("4.40305E+17", "Excel"),
    ],
)
def test_bad_id_numbers_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match="id_number") as caught:
        normalize_id_number(value)
    assert message in caught.value.message
    assert caught.value.field == "id_number"


@given(n=st.integers(0, 9_999_999), position=st.integers(0, 16), delta=st.integers(1, 9))
def test_every_single_digit_typo_is_caught(n: int, position: int, delta: int) -> None:
    # MOD 11-2 detects all single-digit substitutions: a property of the weights, checked here.
    good = id_number(n)
    assert normalize_id_number(good) == good
    digit = (int(good[position]) + delta) % 10
    typo = good[:position] + str(digit) + good[position + 1 :]
    assert id_check_char(typo[:17]) != good[17]
    with pytest.raises(ValidationError):
        normalize_id_number(typo)


@pytest.mark.parametrize("value", ["13800138000", "+86 138 0013 8000", "138-0013-8000"])
def test_phone_accepts_common_spellings(value: str) -> None:
    assert normalize_phone(value) == "13800138000"


@pytest.mark.parametrize("value", ["1380013800", "23800138000", "138001380001", "1.38E+10", ""])
def test_phone_refuses_anything_else(value: str) -> None:
    with pytest.raises(ValidationError, match="phone"):
        normalize_phone(value)


def test_card_numbers_are_32_bit() -> None:
    assert check_card_number(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32):
        with pytest.raises(ValidationError, match="card"):
            check_card_number(bad)
