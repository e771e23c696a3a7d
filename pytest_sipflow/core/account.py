"""Real mode (§4.8): which server an instance registers with, as whom, over what.

Pure: instance data and the run's settings in, an :class:`Account` out. The password is
kept out of every ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..sip import TRANSPORT_PORTS
from ..sip.address import split_host_port
from .failures import StepFailed
from .settings import EngineSettings, TlsSettings


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
    tls_cert: str | None = None   # the instance's own client certificate (mutual TLS)
    tls_key: str | None = None
    sips: bool = False            # sips: registrar, AOR and Contact (TLS only)

    @property
    def server(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    @property
    def registrar_uri(self) -> str:
        scheme = "sips" if self.sips else "sip"
        return f"{scheme}:{self.host}:{self.port};transport={self.transport.lower()}"

    @property
    def proxy_uri(self) -> str:
        """Every request is routed through this (the server itself unless told otherwise)."""
        if self.outbound_proxy and ";lr" not in self.outbound_proxy.lower():
            return f"{self.outbound_proxy};lr"   # loose routing: the request URI stays
        return self.outbound_proxy or f"{self.registrar_uri};lr"

    @property
    def aor(self) -> str:
        return f"{'sips' if self.sips else 'sip'}:{self.user}@{self.domain}"

    def agent_args(self) -> dict[str, Any]:
        """The agent's ``configure`` arguments for this account."""
        return {"registrar": self.registrar_uri, "domain": self.domain,
                "username": self.username, "password": self.password, "realm": self.realm,
                "outbound_proxy": self.proxy_uri, "register": self.register,
                "expires": self.expires, "transport": self.transport.lower()}


def tls_args(tls: TlsSettings, account: Account | None = None) -> dict[str, Any]:
    """The agent's ``configure`` ``tls`` argument from the run's ``--sipflow-tls-*``; an
    account's own client certificate wins."""
    cert, key = tls.cert_file, tls.key_file
    if account is not None and account.tls_cert:
        cert, key = account.tls_cert, account.tls_key
    return {"ca_file": tls.ca_file, "cert_file": cert, "key_file": key,
            "verify_server": tls.verify}


def unregister_trouble(reset_reply: dict[str, Any]) -> str | None:
    """What went wrong with the un-REGISTER of an agent's ``reset``, if anything: worth a
    warning only, the test is over by then."""
    error = (reset_reply.get("unregister") or {}).get("error")
    return str(error) if error else None


def account_from(user: str, settings: EngineSettings, *, registrar: str | None = None,
                 port: int | str | None = None, transport: str | None = None,
                 username: str | None = None, password: str | None = None,
                 realm: str | None = None, domain: str | None = None,
                 outbound_proxy: str | None = None, register: bool = True,
                 expires: int = 300) -> Account | None:
    """The one rule for both front ends (scenario files and ``sip_instance``): values given
    here win over the run's options; None in local mode (no registrar anywhere).

    ``registrar`` is ``host``, ``host:port`` or ``[v6]:port``; ``port`` overrides its port.
    With a registrar of its own an account speaks UDP unless told otherwise; without one it
    takes the run's ``--sipflow-registrar`` and, unless ``transport`` is given,
    ``--sipflow-transport``. Bad values are ValueErrors that say what is expected.
    """
    if registrar:
        host, written_port = split_host_port(registrar)
        chosen = transport or "UDP"
    elif settings.registrar:
        host, written_port = split_host_port(settings.registrar)
        chosen = transport or settings.transport
    else:
        return None
    chosen = chosen.strip().upper()
    if chosen not in TRANSPORT_PORTS:
        raise ValueError(f"transport {transport!r} is not one of udp, tcp, tls")
    text = str(port if port is not None else "").strip()
    try:
        number = int(text) if text else written_port or TRANSPORT_PORTS[chosen]
    except ValueError:
        raise ValueError(f"port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is not between 1 and 65535")
    return Account(host=host, port=number, transport=chosen, user=user,
                   domain=domain or host, username=username or user, password=password,
                   realm=realm or "*", outbound_proxy=outbound_proxy or None,
                   register=register, expires=expires)


def account_for(user: str, data: Any, settings: EngineSettings) -> Account | None:
    """The account of a scenario instance, or None in local mode.

    ``data`` is the instance's :class:`~pytest_sipflow.format.schema.SipInstanceData`; its keys win
    over the run's options (a ``pbxTransport`` written in the file also with the option's
    registrar).
    """
    written = data.pbx_host or "pbx_transport" in data.model_fields_set
    account = account_from(
        user, settings, registrar=data.pbx_host or None, port=data.pbx_port or None,
        transport=data.pbx_transport if written else None, username=data.username or None,
        password=data.password.get_secret_value() if data.password is not None else None,
        realm=data.realm or None, domain=data.domain or None,
        outbound_proxy=data.outbound_proxy or None, register=data.register_,
        expires=data.register_interval_seconds)
    if account is not None and (data.tls_cert or data.sips):
        account = replace(account, tls_cert=data.tls_cert or None,
                          tls_key=data.tls_key or None, sips=data.sips)
    return account


def registration_failure(instance: str, account: Account, agent_text: str,
                         timed_out: bool = False) -> StepFailed:
    """A registration that failed at set-up, said the same way by the engine and
    ``sip_instance``: instance, AOR, server, transport, and what went wrong in plain words."""
    text = agent_text.removeprefix("configure failed: ").removeprefix("configure: ")
    low = text.lower()
    code = re.search(r"(?:refused|failed): ([1-6]\d\d) ([^(;]*)", text)
    if timed_out or "no response" in low:
        why, actual = text, "no response"
    elif "connection refused" in low:
        why = (f"no response: connection refused, nothing listens on {account.server} over "
               f"{account.transport} (is the server up?)")
        actual = "no response (connection refused)"
    elif "certificate verif" in low or "ecertverif" in low:
        why = ("TLS certificate verification failed: the server's certificate is not "
               "trusted (unknown CA, wrong host name or expired; add its CA with "
               "--sipflow-tls-ca, or turn checks off with --sipflow-tls-insecure)")
        actual = "certificate verification failed"
    elif "pj_eeof" in low and account.transport == "TLS":
        cert = "without" if account.tls_cert is None else "with"
        why = (f"the server closed the TLS connection ({cert} a client certificate of the "
               "instance): if it requires one, give tlsCert/tlsKey or --sipflow-tls-cert/-key")
        actual = "TLS connection closed by the server (no SIP response)"
    elif code is not None:
        status = f"{code.group(1)} {code.group(2).strip()}".strip()
        why = f"the server answered {status}" + (
            " (check the username and password)" if code.group(1) in ("401", "403", "407")
            else "")
        actual = status
        realms = re.findall(r'challenge realm "([^"]*)"', text)
        if account.realm not in ("*", "") and realms and account.realm not in realms:
            named = ", ".join(repr(r) for r in realms)
            why = (f"the server challenged for realm {named}, but instance {instance!r} has "
                   f"credentials for realm {account.realm!r} only (fix 'realm', or leave it "
                   "out to answer any realm)")
            actual = f"{status}, realm {named}"
    else:
        why, actual = text, text
    return StepFailed(f"registration of instance {instance!r} as {account.aor} with "
                      f"{account.server} over {account.transport} failed: {why}",
                      expected="2xx to REGISTER", actual=actual,
                      detail=[f"agent: {text}"] if why != text else [])
