"""The HTML fragment: well-formed, SVG ladder arrows in order, trace escaped, secrets masked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pytest_sipflow.reporting.html import render_html, render_svg
from pytest_sipflow.reporting.ladder import build_ladder

from sipflows import BUSY_CALL_ID, busy_call

SVG = "{http://www.w3.org/2000/svg}"
KEYS = {("alice", BUSY_CALL_ID): "call-1", ("bob", BUSY_CALL_ID): "call-1"}


def arrows(svg: ET.Element) -> list[tuple[str, str]]:
    """(label, hover title) of every arrow group."""
    return [(g.find(f"{SVG}text").text or "", g.find(f"{SVG}title").text or "")
            for g in svg.iter(f"{SVG}g")]


def test_fragment_is_well_formed_with_heading_svg_and_trace() -> None:
    root = ET.fromstring(render_html(busy_call(), "busy <call> & co", call_keys=KEYS))
    assert root.tag == "div" and root.get("class") == "sipflow-report"
    assert root.find("h4").text == "busy <call> & co"  # escaped in the markup, text restored
    svg = root.find(f"{SVG}svg")
    assert [label for label, _ in arrows(svg)] == [
        "INVITE", "100 Trying", "180 Ringing", "486 Busy Here", "ACK"]
    assert arrows(svg)[0][1] == "INVITE sip:200@127.0.0.1:5064 SIP/2.0"
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts[:2] == ["alice", "bob"]
    assert f"alice 'call-1', bob 'call-1' (Call-ID {BUSY_CALL_ID})" in texts
    assert "1013" in texts
    pre = root.find("pre").text
    assert pre.count("CSeq: 1 INVITE") == 8 and '"Alice" <sip:100@127.0.0.1:5062>' in pre


def test_markup_escapes_angle_brackets_of_sip_uris() -> None:
    html = render_html(busy_call(), "t")
    assert "&lt;sip:100@127.0.0.1:5062&gt;" in html
    assert "<sip:" not in html


def test_last_n_note_and_secrets() -> None:
    html = render_html(busy_call(), "Alice's call", last=2, secrets=["Alice", "bob"])
    assert "Alice" not in html and "bob" not in html
    svg = ET.fromstring(html).find(f"{SVG}svg")
    assert "... 3 earlier messages not shown" in [t.text for t in svg.iter(f"{SVG}text")]
    assert len(arrows(svg)) == 2


def test_svg_size_grows_with_rows_and_columns() -> None:
    small = ET.fromstring(render_svg(build_ladder(busy_call(), last=1)))
    big = ET.fromstring(render_svg(build_ladder(busy_call())))
    assert int(big.get("height")) > int(small.get("height"))
    assert big.get("width") == small.get("width")
