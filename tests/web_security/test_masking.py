"""The masks people see ID numbers and phones through."""

from __future__ import annotations

from web_security.masking import mask_id_number, mask_phone


def test_masks_keep_prefix_and_last_four() -> None:
    assert mask_id_number("440305199001011234") == "4403**********1234"
    assert mask_phone("13800138000") == "138****8000"


def test_short_values_are_masked_whole() -> None:
    assert mask_id_number("12345678") == "********"
    assert mask_phone("1380013") == "*******"
