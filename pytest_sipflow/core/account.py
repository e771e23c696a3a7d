"""Real mode (§4.8): which server an instance registers with, as whom, over what.

Pure: instance data and the run's settings in, an :class:`Account` out. The password is
kept out of every ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine.settings import EngineSettings
from ..sip import TRANSPORT_PORTS


@dataclass(frozen=True)
class Account:
    host: str
    port: int
    transport: str  # "UDP" | "TCP" | "TLS"
    user: str  # user part of the address-of-record
    domain: str  # host part of the address-of-record
    username: str  # digest user name
    password: str | None = field(default=None, repr=False)
    realm: str = "*"
    outbound_proxy: str | None = None
    register: bool = True
    expires: int = 300

    @property
    def server(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def registrar_uri(self) -> str:
        return f"sip:{self.host}:{self.port};transport={self.transport.lower()}"

    @property
    def proxy_uri(self) -> str:
        """Every request is routed through this (the server itself unless told otherwise)."""
        return self.outbound_proxy or f"{self.registrar_uri};lr"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def agent_args(self) -> dict[str, Any]:
        """The agent's ``configure`` arguments for this account."""
        return {"registrar": self.registrar_uri, "domain": self.domain,
                "username": self.username, "password": self.password, "realm": self.realm,
                "outbound_proxy": self.proxy_uri, "register": self.register,
                "expires": self.expires, "transport": self.transport.lower()}


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port``; a bad port is a ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, None


def account_for(user: str, data: Any, settings: EngineSettings) -> Account | None:
    """The account of an instance, or None in local mode (no pbxHost, no registrar option).

    ``data`` is the instance's :class:`~pytest_sipflow.schema.SipInstanceData`; its keys win
    over the run's options.
    """
    if data.pbx_host:
        host, port = data.pbx_host, str(data.pbx_port or "").strip()
        transport = (data.pbx_transport or "UDP").upper()
    elif settings.registrar:
        host, default_port = split_host_port(settings.registrar)
        port = str(data.pbx_port or default_port or "")
        given = "pbx_transport" in data.model_fields_set  # a key written in the file wins
        transport = (data.pbx_transport if given else settings.transport).upper()
    else:
        return None
    password = data.password.get_secret_value() if data.password is not None else None
    return Account(
        host=host, port=int(port) if port else TRANSPORT_PORTS[transport], transport=transport,
        user=user, domain=data.domain or host, username=data.username or user,
        password=password, realm=data.realm or "*", outbound_proxy=data.outbound_proxy or None,
        register=data.register_, expires=data.register_interval_seconds)
