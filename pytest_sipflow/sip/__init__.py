"""Pure SIP knowledge shared by the pytest side and the agents: constants and message text.

Nothing here imports pjsua2, pytest or pydantic, so every layer (schema, engine, agent,
reports) may use it and its logic is unit-tested without sockets.
"""

from __future__ import annotations

#: Default local address for SIP and RTP (the plugin's bind address; tests only use it).
LOOPBACK = "127.0.0.1"

#: Digits a DTMF command or check may carry (RFC 4733 events 0-15).
DTMF_DIGITS = "0123456789*#ABCD"

#: Transports an instance may use, with their default server ports.
TRANSPORT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}

#: Codecs an instance offers when it names none (scenario files, ``sip_instance``, agents).
DEFAULT_CODECS = ("PCMU", "PCMA")

#: Keys whose values are secrets: masked in agent logs, never echoed in a format error.
SECRET_KEYS = frozenset({"password", "key_password", "passwd", "secret"})
