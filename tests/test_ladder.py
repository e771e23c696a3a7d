"""The text ladder: columns, one arrow per wire message, Call-ID groups, last N, widths."""

from __future__ import annotations

from pytest_sipflow.reporting.ladder import build_ladder, cut, message_label, render_ladder
from pytest_sipflow.reporting.trace import SipRecord

from sipflows import BUSY_CALL_ID, busy_call, records

KEYS = {("alice", BUSY_CALL_ID): "call-1", ("bob", BUSY_CALL_ID): "call-1"}

BUSY_LADDER = """\
           alice                          bob
     ms      |                             |
--- alice 'call-1', bob 'call-1' (Call-ID 4f1c9e0d2a7b4c1e8d3f@127.0.0.1) ---
      0      |-----------INVITE----------->|
      1      |<--------100 Trying----------|
      2      |<--------180 Ringing---------|
   1013      |<-------486 Busy Here--------|
   1013      |-------------ACK------------>|"""

VIA_PROXY = [
    ("alice", "kamailio", "INVITE sip:200@127.0.0.1 SIP/2.0", "1 INVITE", 0.0),
    ("kamailio", "alice", "SIP/2.0 407 Proxy Authentication Required", "1 INVITE", 1.0),
    ("kamailio", "bob", "INVITE sip:200@127.0.0.1:5064 SIP/2.0", "1 INVITE", 3.0),
    ("bob", "kamailio", "SIP/2.0 183 Session Progress", "1 INVITE", 5.0),
    ("kamailio", "alice", "SIP/2.0 183 Session Progress", "1 INVITE", 6.0),
]


def test_busy_call_ladder_draws_each_message_once() -> None:
    assert render_ladder(busy_call(), call_keys=KEYS) == BUSY_LADDER


def test_records_may_come_in_any_order_and_as_records() -> None:
    shuffled = [SipRecord.from_dict(r) for r in reversed(busy_call())]
    assert render_ladder(iter(shuffled), call_keys=KEYS) == BUSY_LADDER


def test_foreign_party_gets_a_named_column_and_groups_follow_call_ids() -> None:
    recs = records(VIA_PROXY, "abc@h") + records(
        [("bob", "alice", "OPTIONS sip:100@127.0.0.1:5062 SIP/2.0", "1 OPTIONS", 4.0)], "x@y")
    assert render_ladder(recs, parties={"127.0.0.1:5060": "kamailio"},
                         call_keys={("alice", "abc@h"): "call-1"}) == """\
           alice                          bob                        kamailio
     ms      |                             |                             |
--- alice 'call-1' (Call-ID abc@h) ---
      0      |--------------------------INVITE-------------------------->|
      1      |<------------407 Proxy Authentication Required-------------|
      3      |                             |<----------INVITE------------|
      5      |                             |----183 Session Progress---->|
      6      |<------------------183 Session Progress--------------------|
--- Call-ID x@y ---
      4      |<----------OPTIONS-----------|                             |"""


def test_unnamed_foreign_party_is_its_address_and_instances_order_is_kept() -> None:
    ladder = build_ladder(records(VIA_PROXY, "abc@h"), instances=["bob", "alice", "carol"])
    assert ladder.columns == ("bob", "alice", "carol", "127.0.0.1:5060")
    named = build_ladder(records(VIA_PROXY, "abc@h"), parties={"127.0.0.1": "kamailio"})
    assert named.columns == ("alice", "bob", "kamailio")
    assert [(a.source, a.target, a.label) for a in named.groups[0].arrows][:2] == [
        (0, 2, "INVITE"), (2, 0, "407 Proxy Authentication Required")]


def test_last_n_messages_and_how_many_were_left_out_narrow_width() -> None:
    text = render_ladder(records(VIA_PROXY, "abc@h"), parties={"127.0.0.1": "kamailio"},
                         call_keys={("alice", "abc@h"): "call-1"}, last=3, width=60)
    assert text == """\
           alice             bob           kamailio
     ms      |                |                |
... 2 earlier messages not shown
--- alice 'call-1' (Call-ID abc@h) ---
      3      |                |<----INVITE-----|
      5      |                |--183 Sessio..->|
      6      |<-----183 Session Progress-------|"""
    assert render_ladder(busy_call(), last=4).splitlines()[2] == "... 1 earlier message not shown"


def test_lines_fit_100_columns_with_long_names_call_ids_and_labels() -> None:
    long_id = "x" * 150 + "@127.0.0.1"
    recs = records(VIA_PROXY, long_id)
    for rec in recs:
        if rec["instance"] == "alice":
            rec["instance"] = "alice-with-a-very-long-instance-name"
    text = render_ladder(recs, parties={"127.0.0.1": "kamailio-registrar-and-proxy-of-the-lab"},
                         call_keys={("bob", long_id): "a-long-call-key"})
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "--- bob 'a-long-call-key' (Call-ID xxx" in text
    assert "alice-with-a-very-long-inst.." in text


def test_ms_offsets_count_from_the_first_message_even_when_cut() -> None:
    lines = render_ladder(busy_call(), last=1).splitlines()
    assert lines[-1].startswith("   1013 ")


def test_secrets_are_masked_and_empty_input() -> None:
    assert "alice" not in render_ladder(busy_call(), call_keys=KEYS, secrets=["alice"])
    assert render_ladder([]) == "(no SIP messages)"


def test_message_label_and_cut() -> None:
    rec = SipRecord.from_dict(busy_call()[0])
    assert message_label(rec) == "INVITE"
    assert message_label(SipRecord.from_dict(busy_call()[6])) == "486 Busy Here"
    assert cut("abcdef", 6) == "abcdef" and cut("abcdefg", 6) == "abcd.." and cut("abc", 2) == "ab"


def test_message_to_itself_and_messages_without_call_id() -> None:
    to_self = records([("alice", "alice", "INVITE sip:100@127.0.0.1:5062 SIP/2.0", "1 INVITE", 0.0)],
                      "self@h", instances=("alice",))
    options = records([("alice", "bob", "OPTIONS sip:200@127.0.0.1:5064 SIP/2.0", "1 OPTIONS", 3.0)],
                      "x")
    for rec in options:
        rec["sip_call_id"] = None
    assert render_ladder(to_self + options) == """\
           alice                          bob
     ms      |                             |
--- Call-ID self@h ---
      0      |<> INVITE                    |
--- no Call-ID ---
      3      |-----------OPTIONS---------->|"""


def test_last_zero_shows_the_columns_and_the_count_only() -> None:
    assert render_ladder(busy_call(), last=0).splitlines()[2:] == ["... 5 earlier messages not shown"]
    assert build_ladder(busy_call(), last=-3).omitted == 5
