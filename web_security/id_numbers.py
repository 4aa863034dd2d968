"""Resident ID numbers (GB 11643-1999): the check character both applications check against.

    id_check_char("11010519491231002")    # 'X'

The gateway checks the numbers people type for tenants; the platform checks the number an
officer searches by, so that a mistyped one is refused rather than searched for nobody.
"""

from __future__ import annotations

import operator

# Weights 2^(17-i) mod 11 for the first 17 digits; the ISO 7064 MOD 11-2 remainder indexes the
# check character. It catches every single-digit error and every swap of two adjacent digits,
# which is what typing a number off a card gets wrong.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def id_check_char(first17: str) -> str:
    """Return the MOD 11-2 check character for the first 17 digits of an ID number."""
    total = sum(map(operator.mul, map(int, first17), ID_WEIGHTS))
    return CHECK_CHARS[total % 11]
