"""Writes the real-mode scenario files of this folder from the call-control ones.

Each instance becomes a phone of the test registrar (``conftest.py`` starts it and exports
the variables): its dn ``100``/``200``/``300`` becomes the account ``10<worker>1``/``…2``/
``…3`` (so xdist workers never share an account), the password comes from the
environment, and every dn target goes through the server. Run it after changing a
call-control file; ``tests/test_real_mode.py`` checks the committed files are its output.

    .venv/bin/python scenarios/real-mode/make_real_mode.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "call-control"
ACCOUNTS = {"100": "1", "200": "2", "300": "3"}
PORTS = {"UDP": "${SIPFLOW_TEST_UDP_PORT}", "TCP": "${SIPFLOW_TEST_TCP_PORT}",
         "TLS": "${SIPFLOW_TEST_TLS_PORT}"}
#: (source file, transport, output name)
FILES = [
    ("core-01-outbound-basic-call", "UDP", "core-01-udp"),
    ("core-02a-inbound-released-by-callee", "UDP", "core-02a-udp"),
    ("core-02b-inbound-released-by-caller", "UDP", "core-02b-udp"),
    ("core-03-hold-retrieve-addressed-call", "UDP", "core-03-udp"),
    ("core-04-blind-transfer", "UDP", "core-04-udp"),
    ("core-05-attended-transfer", "UDP", "core-05-udp"),
    ("neg-01-hold-wrong-callid", "UDP", "neg-01-udp"),
    ("core-01-outbound-basic-call", "TCP", "core-01-tcp"),
    ("core-01-outbound-basic-call", "TLS", "core-01-tls"),
]


def account(dn: str) -> str:
    return "10${SIPFLOW_WORKER}" + ACCOUNTS[dn]


def real_mode(doc: dict[str, Any], transport: str, name: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    doc["name"] = f"{doc['name']} (real mode, {transport})"
    doc["description"] = (f"{doc.get('description', '')} Through the test registrar over "
                          f"{transport}, every phone registered with digest auth.").strip()
    doc["markers"] = sorted(set(doc.get("markers", [])) | {"real_mode"})
    for node in doc["nodes"]:
        data = node.get("data", {})
        if node["type"] == "sipInstance":
            dn = data["dn"]
            data.update(dn=account(dn), pbxHost="${SIPFLOW_TEST_REGISTRAR_HOST}",
                        pbxPort=PORTS[transport], pbxTransport=transport,
                        password="${PBX_PW_100" + ACCOUNTS[dn] + "}")
        for key in ("targetUri", "number"):
            if data.get(key) in ACCOUNTS:
                data[key] = account(data[key])
    return doc


def main() -> None:
    for source, transport, name in FILES:
        doc = json.loads((SOURCE / f"{source}.sipflow.json").read_text())
        out = HERE / f"{name}.sipflow.json"
        out.write_text(json.dumps(real_mode(doc, transport, name), indent=2) + "\n")


if __name__ == "__main__":
    main()
