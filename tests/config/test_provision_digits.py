"""The installer's spreadsheet: a reader address or broker port in other digits is a bad row."""

from __future__ import annotations

import pytest

from gateway.provision import COLUMNS, SheetError, read_sheet

HEADER = ",".join(COLUMNS) + "\n"


@pytest.mark.parametrize(
    ("readers", "broker", "complaint"),
    [
        ("main:²", "", "readers: 'main:²' is not door:address"),  # isdigit() yes, int() no
        ("main:１", "", "readers: 'main:１' is not door:address"),  # int() reads it as 1
        ("main:1", "mqtt.example.gov.cn:８８８３", "broker: 'mqtt.example.gov.cn:８８８３'"),
        ("main:1", "mqtt.example.gov.cn:²", "broker: 'mqtt.example.gov.cn:²' is not host:port"),
    ],
)
def test_a_number_in_other_digits_names_its_line(readers: str, broker: str, complaint: str) -> None:
    row = f"440305001002-0042,桃源村 42 栋,gw-440305-0042,/dev/ttyUSB0,{readers},,{broker}\n"
    with pytest.raises(SheetError) as caught:
        read_sheet((HEADER + row).encode())
    assert f"line 2: {complaint}" in str(caught.value)
