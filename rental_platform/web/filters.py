"""The fleet's filters, checked by the police search's own rules (rental_platform.search): a
street is its district's 6 digits and its 3 (`440305001`), a community 12 digits
(`440305001002`), and the community must lie on the street. Out of bounds is a FilterError
naming the filter (a 422), never an empty or wider answer."""

from __future__ import annotations

from ..search import parse_entry_filter
from ..store.sealing import Sealer

# The search's parser wants a purpose; the fleet is not audited and needs none.
_NOT_A_SEARCH = "fleet"


def fleet_area(street: str | None, community: str | None, sealer: Sealer) -> tuple[str, ...]:
    """(district, street[, community]) of the filters given, () for none; FilterError."""
    given = {"street": street or "", "community": community or "", "purpose": _NOT_A_SEARCH}
    return parse_entry_filter(given, sealer).area
