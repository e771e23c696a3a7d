"""Writes the SIP-check scenario files: the passing ones of this folder and the must-fail ones
of ``tests/data/checks/`` (named ``*.must-fail.json`` so no run collects them;
``tests/test_checks_scenarios.py`` copies them into pytester runs and asserts their
failure text). Editor style: every node has
its position, size and label, as the SIPFLOW editor saves them. The test suite checks the
committed files are this script's output, so edit here and run it:

    .venv/bin/python scenarios/checks/make_checks.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MUST_FAIL = HERE.parent.parent / "tests" / "data" / "checks"

PAI = '"Alice" <sip:100@example.com>'


class Flow:
    """One scenario, drawn column by column: one column per instance, nodes down it."""

    def __init__(self, name: str, description: str, timeout: int = 15000) -> None:
        self.doc: dict[str, Any] = {"name": name, "description": description,
                                    "timeout": timeout, "nodes": [], "edges": []}
        self.column: dict[str, int] = {}
        self.last: dict[str, str] = {}
        self.rows: dict[str, int] = {}

    def instance(self, node_id: str, label: str, dn: str, **data: Any) -> "Flow":
        col = len(self.column)
        self.column[node_id] = col
        self.last[node_id] = node_id
        self.rows[node_id] = 0
        self._node(node_id, "sipInstance", col, 0,
                   {"label": label, "dn": dn, "codecs": ["PCMU", "PCMA"], **data})
        return self

    def step(self, ua: str, node_id: str, kind: str, name: str, label: str,
             **data: Any) -> "Flow":
        """A command/event node on ``ua``'s column, after its previous node (success edge);
        its id is ``<ua>-<node_id>``."""
        node_id = f"{ua}-{node_id}"
        self.rows[ua] += 1
        key = "command" if kind == "command" else "event"
        body = {"label": label, key: name, "sipInstanceId": ua, **data}
        self._node(node_id, kind, self.column[ua], self.rows[ua], body)
        edge = {"id": f"e{len(self.doc['edges']) + 1}", "source": self.last[ua],
                "target": node_id, "sourceHandle": "success", "targetHandle": None,
                "type": "smoothstep", "animated": False}
        self.doc["edges"].append(edge)
        self.last[ua] = node_id
        return self

    def command(self, ua: str, node_id: str, name: str, label: str, **data: Any) -> "Flow":
        return self.step(ua, node_id, "command", name, label, **data)

    def event(self, ua: str, node_id: str, name: str, label: str, **data: Any) -> "Flow":
        return self.step(ua, node_id, "event", name, label, **data)

    def _node(self, node_id: str, kind: str, col: int, row: int, data: dict[str, Any]) -> None:
        self.doc["nodes"].append({"id": node_id, "type": kind,
                                  "position": {"x": 340 * col, "y": 130 * row},
                                  "data": data, "width": 220, "height": 72, "selected": False})


def alice_bob(name: str, description: str, **bob: Any) -> Flow:
    return (Flow(name, description).instance("alice", "Alice", "100")
            .instance("bob", "Bob", "200", **bob))


def headers_round_trip() -> Flow:
    """Headers out on every command of a call, checked on the message each one caused."""
    f = alice_bob("headers out and in", "Every command of a call adds headers; the peer's "
                  "event node checks them on the message it received (expectHeaders).")
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000, headers={"X-Case": "42", "P-Asserted-Identity": PAI},
              expectHeaders={"X-Answered-By": "^bob$", "Contact": "sip:200@"})
    f.event("alice", "rang", "RINGING", "Heard ringback", callId="call", timeout=5000,
            expectHeaders={"To": "tag=", "CSeq": "INVITE"})
    f.event("alice", "up", "CONNECTED", "Call is up", callId="call", timeout=5000,
            expectedCodec="PCMU")
    f.command("alice", "hold", "Hold", "Hold Bob", callId="call", timeout=3000,
              headers={"X-Step": "hold"})
    f.command("alice", "retrieve", "Retrieve", "Take Bob back", callId="call", timeout=3000,
              headers={"X-Step": "retrieve"})
    f.command("alice", "digit", "SendDTMF", "Press 5 (SIP INFO)", callId="call", digits="5",
              method="info", headers={"X-Step": "dtmf"})
    f.command("alice", "bye", "Release", "Hang up", callId="call",
              headers={"Reason": "Q.850;cause=16;text=\"Normal call clearing\""})
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000,
            expectHeaders={
                "X-Case": "^42$",                             # header present, regex
                "P-Asserted-Identity": r"<sip:100@example\.com>",
                "f": "Alice",                                 # compact form of From
                "Request-URI": r"^sip:200@127\.0\.0\.1:\d+$",  # the request line
                "Record-Route": {"absent": True},             # local mode: no proxy
                "Subject": {"notMatch": "spam"},
            })
    f.command("bob", "answer", "Answer", "Bob answers", callId="call",
              headers={"X-Answered-By": "bob"})
    f.event("bob", "held", "HELD", "Bob is held", callId="call", timeout=5000,
            expectHeaders={"X-Step": "^hold$"})
    f.event("bob", "back", "RETRIEVED", "Bob is back", callId="call", timeout=5000,
            expectHeaders={"X-Step": "^retrieve$"})
    f.event("bob", "five", "DTMFReceived", "Bob gets 5", callId="call", expectedDigit="5",
            timeout=5000, expectHeaders={"X-Step": "^dtmf$",
                                         "Content-Type": "application/dtmf-relay"})
    f.event("bob", "gone", "DISCONNECTED", "Bob sees the BYE", callId="call", timeout=5000,
            expectHeaders={"Reason": "cause=16"})
    return f


def transfer_headers() -> Flow:
    """The REFER and its NOTIFY checked; headers on the REFER."""
    f = alice_bob("transfer headers", "Alice blind-transfers Bob to Carol with a header on "
                  "the REFER; Bob checks the REFER, Alice the final NOTIFY.")
    f.instance("carol", "Carol", "300")
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000)
    f.command("alice", "refer", "BlindTransfer", "Transfer Bob to 300", callId="call",
              targetUri="300", timeout=5000, headers={"X-Transfer": "blind"})
    f.event("alice", "done", "NOTIFY", "Carol answered", callId="call", statusCode=200,
            timeout=5000, expectHeaders={"Event": "^refer", "Subscription-State": "terminated"})
    f.command("alice", "drop", "Release", "Alice leaves", callId="call")
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000)
    f.command("bob", "answer", "Answer", "Bob answers", callId="call")
    f.event("bob", "referred", "TRANSFERRED", "Bob is referred", callId="call", timeout=5000,
            expectHeaders={"Refer-To": "sip:300@", "X-Transfer": "^blind$",
                           "Referred-By": "sip:100@"})
    f.event("bob", "with-carol", "CONNECTED", "Bob talks to Carol", callId="call",
            timeout=5000)
    f.event("bob", "gone", "DISCONNECTED", "Carol hangs up", callId="call", timeout=5000)
    f.event("carol", "rings", "INCOMING", "Carol's phone rings", callId="call", timeout=5000,
            expectHeaders={"Request-URI": "^sip:300@", "From": "sip:200@"})
    f.command("carol", "answer", "Answer", "Carol answers", callId="call")
    f.event("carol", "talk", "TIMEOUT", "Talk", timeout=200)
    f.command("carol", "bye", "Release", "Carol hangs up", callId="call")
    return f


def busy_expected() -> Flow:
    f = alice_bob("486 expected and got", "Bob refuses with 486 and a header: MakeCall "
                  "expects exactly 486 and checks the header on it.")
    f.command("alice", "dial", "MakeCall", "Dial 200, expect busy", callId="call",
              targetUri="200", timeout=5000, expectedStatusCode=486,
              expectHeaders={"X-Busy-Reason": "^dnd$"})
    f.event("alice", "gone", "DISCONNECTED", "The call is over", callId="call", timeout=5000,
            expectHeaders={"X-Busy-Reason": "dnd"})
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000)
    f.command("bob", "busy", "Response", "Bob is busy", callId="call", statusCode=486,
              headers={"X-Busy-Reason": "dnd"})
    return f


def must_not_ring() -> Flow:
    f = alice_bob("must not ring", "Alice calls Bob: Carol's phone must not ring and Bob's "
                  "call must not drop while it is up.")
    f.instance("carol", "Carol", "300")
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000)
    f.event("alice", "talk", "TIMEOUT", "Talk", timeout=800)
    f.command("alice", "bye", "Release", "Hang up", callId="call")
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000)
    f.command("bob", "answer", "Answer", "Bob answers", callId="call")
    f.event("bob", "stays", "DISCONNECTED", "Not dropped for 300 ms", callId="call",
            absent=True, timeout=300)
    f.event("bob", "gone", "DISCONNECTED", "Alice hangs up", callId="call", timeout=5000)
    f.event("carol", "silent", "INCOMING", "Carol must not ring", absent=True, timeout=1000)
    return f


def connected_pcma() -> Flow:
    f = alice_bob("CONNECTED with PCMA", "Bob only speaks PCMA: both sides are connected "
                  "with PCMA although Alice prefers PCMU.", codecs=["PCMA"])
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000)
    f.event("alice", "up", "CONNECTED", "Connected with PCMA", callId="call",
            expectedCodec="PCMA", timeout=5000)
    f.command("alice", "bye", "Release", "Hang up", callId="call")
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000)
    f.command("bob", "answer", "Answer", "Bob answers", callId="call")
    f.event("bob", "up", "CONNECTED", "Connected with PCMA/8000", callId="call",
            expectedCodec="PCMA/8000", timeout=5000,
            expectHeaders={"Request-URI": "^sip:200@"})  # the ACK
    f.event("bob", "gone", "DISCONNECTED", "Alice hangs up", callId="call", timeout=5000)
    return f


def message_body() -> Flow:
    f = alice_bob("MESSAGE body and headers", "Alice sends a pager-mode MESSAGE; Bob checks "
                  "its body with a regex and its headers; Alice gets none back.")
    f.command("alice", "send", "SendMessage", "Text Bob", targetUri="200",
              body="order 4711 shipped", contentType="text/plain",
              headers={"X-Order": "4711"})
    f.event("alice", "quiet", "MESSAGE", "No reply", absent=True, timeout=300)
    f.event("bob", "text", "MESSAGE", "Bob reads it", expectedBody=r"order \d+ shipped",
            timeout=5000, expectHeaders={"X-Order": "^4711$", "c": "text/plain",
                                         "From": "sip:100@"})
    return f


# --- real mode ---------------------------------------------------------------------------

REAL_MODE = HERE.parent / "real-mode"


def phone(f: Flow, node_id: str, label: str, slot: int) -> Flow:
    """A phone of the test registrar (``scenarios/real-mode/conftest.py`` exports it)."""
    return f.instance(node_id, label, "10${SIPFLOW_WORKER}" + str(slot),
                      pbxHost="${SIPFLOW_TEST_REGISTRAR_HOST}",
                      pbxPort="${SIPFLOW_TEST_UDP_PORT}", pbxTransport="UDP",
                      password="${PBX_PW_100" + str(slot) + "}")


def real_mode_checks() -> Flow:
    f = Flow("SIP checks through the registrar (real mode, UDP)",
             "Bob's INCOMING INVITE carries the server's Record-Route; a call to a user that "
             "is not registered gets the 404 it expects; Alice's request URI names Bob's AOR.")
    f.doc["markers"] = ["real_mode"]
    phone(f, "alice", "Alice", 1)
    phone(f, "bob", "Bob", 2)
    f.command("alice", "nobody", "MakeCall", "Dial an unregistered user",
              callId="nobody", targetUri="10${SIPFLOW_WORKER}9", timeout=5000,
              expectedStatusCode=404, expectHeaders={"To": "sip:10\\d9@"})
    f.command("alice", "dial", "MakeCall", "Dial Bob", callId="call",
              targetUri="10${SIPFLOW_WORKER}2", timeout=5000, headers={"X-Case": "real"},
              expectHeaders={"Record-Route": "lr"})
    f.command("alice", "bye", "Release", "Hang up", callId="call")
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000,
            expectHeaders={"Record-Route": "lr", "X-Case": "^real$",
                           "Request-URI": "^sip:10\\d2@"})
    f.command("bob", "answer", "Answer", "Bob answers", callId="call")
    f.event("bob", "gone", "DISCONNECTED", "Alice hangs up", callId="call", timeout=5000,
            expectHeaders={"Route": {"absent": True}})
    return f


# --- must fail ---------------------------------------------------------------------------


def header_mismatch() -> Flow:
    f = alice_bob("header mismatch", "Bob's INCOMING checks headers the INVITE does not "
                  "satisfy: a wrong value, a header that must be absent, a compact form, "
                  "the Request-URI.")
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000, headers={"X-Case": "42", "P-Asserted-Identity": PAI})
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000,
            expectHeaders={"X-Case": "^43$", "P-Asserted-Identity": {"absent": True},
                           "f": "Mallory", "Request-URI": "^sip:999@", "Via": "UDP"})
    return f


def busy_expected_answered() -> Flow:
    f = alice_bob("486 expected, 200 got", "Alice expects busy but Bob answers: the node "
                  "fails and the unexpected call is released.")
    f.command("alice", "dial", "MakeCall", "Dial 200, expect busy", callId="call",
              targetUri="200", timeout=5000, expectedStatusCode=486)
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000)
    f.command("bob", "answer", "Answer", "Bob answers", callId="call")
    f.event("bob", "gone", "DISCONNECTED", "Released by Alice", callId="call", timeout=5000)
    return f


def rings_but_must_not() -> Flow:
    f = alice_bob("rings but must not", "Bob's phone must not ring, and Alice calls it "
                  "200 ms after the start.")
    f.event("alice", "pause", "TIMEOUT", "Wait a little", timeout=200)
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000)
    f.event("bob", "silent", "INCOMING", "Bob must not ring", absent=True, timeout=3000)
    return f


def wrong_codec() -> Flow:
    f = alice_bob("wrong codec", "Bob only speaks PCMA; Alice expects PCMU.", codecs=["PCMA"])
    f.command("alice", "dial", "MakeCall", "Dial 200", callId="call", targetUri="200",
              timeout=5000)
    f.event("alice", "up", "CONNECTED", "Connected with PCMU?", callId="call",
            expectedCodec="PCMU", timeout=5000)
    f.event("bob", "rings", "INCOMING", "Bob's phone rings", callId="call", timeout=5000)
    f.command("bob", "answer", "Answer", "Bob answers", callId="call")
    return f


PASSING = {"headers-round-trip": headers_round_trip, "transfer-headers": transfer_headers,
           "busy-expected": busy_expected, "must-not-ring": must_not_ring,
           "connected-pcma": connected_pcma, "message-body": message_body}
FAILING = {"header-mismatch": header_mismatch, "busy-expected-answered": busy_expected_answered,
           "rings-but-must-not": rings_but_must_not, "wrong-codec": wrong_codec}


def render(flow: Flow) -> str:
    return json.dumps(flow.doc, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this script writes, with its text."""
    out = {HERE / f"{name}.sipflow.json": render(make()) for name, make in PASSING.items()}
    out.update({MUST_FAIL / f"{name}.must-fail.json": render(make())
                for name, make in FAILING.items()})
    out[REAL_MODE / "checks-udp.sipflow.json"] = render(real_mode_checks())
    return out


def main() -> None:
    MUST_FAIL.mkdir(parents=True, exist_ok=True)
    for path, text in outputs().items():
        path.write_text(text, encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
