"""The one ``host:port`` reader (pytest_sipflow.sip.address): strict for settings, lenient for traces."""

from __future__ import annotations

import pytest

from pytest_sipflow.sip.address import split_address, split_host_port


@pytest.mark.parametrize("text, expected", [
    ("pbx.example.com", ("pbx.example.com", None)),
    (" 10.0.0.1:5070 ", ("10.0.0.1", 5070)),
    ("[::1]:5061", ("::1", 5061)),
    ("[::1]", ("::1", None)),
    ("::1", ("::1", None)),
])
def test_host_and_port_as_written(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["pbx:50x0", "[::1]:sip", "pbx:"])
def test_a_port_that_is_no_number_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        split_host_port(text)


def test_a_trace_address_without_a_usable_port_has_port_zero() -> None:
    assert split_address("pbx:50x0") == ("pbx:50x0", 0) and split_address("h") == ("h", 0)
