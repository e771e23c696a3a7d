"""The agent's shortcut for a message's start line and Call-ID agrees with the full parse."""

from __future__ import annotations

from hypothesis import given, strategies as st

from pytest_sipflow.sip.message import parse, start_and_call_id

_NAMES = st.sampled_from(["Call-ID", "call-id", "i", "I", "Via", "CSeq", "X-Call-ID", "Call-IDx",
                          " Call-ID", "Call-ID ", "From", "junk line"])
_VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                  max_size=20)
_EOL = st.sampled_from(["\r\n", "\n"])


@given(start=_VALUES, headers=st.lists(st.tuples(_NAMES, _VALUES, st.booleans(), _VALUES),
                                       max_size=6), eol=_EOL, body=_VALUES)
def test_shortcut_matches_parse(start: str, headers: list[tuple[str, str, bool, str]],
                                eol: str, body: str) -> None:
    lines = [start]
    for name, value, folded, more in headers:
        lines.append(f"{name}: {value}")
        if folded:
            lines.append(f" {more}")
    text = eol.join(lines) + eol + eol + f"i: in-body{eol}" + body
    message = parse(text)
    assert start_and_call_id(text) == (message.start_line, message.call_id)


def test_compact_and_folded_call_ids() -> None:
    text = "INVITE sip:b@h SIP/2.0\r\ni: abc@h \r\nVia: x\r\n\r\n"
    assert start_and_call_id(text) == ("INVITE sip:b@h SIP/2.0", "abc@h")
    folded = "SIP/2.0 200 OK\r\nCall-ID: abc\r\n  def\r\n\r\n"
    assert start_and_call_id(folded) == ("SIP/2.0 200 OK", "abc def")
    assert start_and_call_id("SIP/2.0 200 OK\r\n\r\nCall-ID: body") == ("SIP/2.0 200 OK", None)
