"""What a scenario needs of the installation (IPv6, TLS), read from its accounts.

Pure: the plugin compares it with the probe's verdicts (``agent.capabilities``) and
skips what cannot run here, before any agent is started for it.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..agent.capabilities import is_ipv6
from .account import account_for
from .settings import EngineSettings


def run_needs(engine: EngineSettings) -> set[str]:
    """What every item of the run needs: IPv6 for a ``::1`` bind address or registrar."""
    return {"ipv6"} if is_ipv6(engine.bind_address) or is_ipv6(engine.registrar) else set()


def scenario_needs(instances: Iterable[Any], engine: EngineSettings) -> set[str]:
    """``instances``: the graph's (``.id``, ``.data``) instances; a bad value is left to
    the engine to report, it needs nothing here."""
    needs = {"ipv6"} if is_ipv6(engine.bind_address) else set()
    for inst in instances:
        try:
            account = account_for(inst.id, inst.data, engine)
        except ValueError:
            continue
        if account is None:
            continue
        if is_ipv6(account.host) or is_ipv6(account.outbound_proxy):
            needs.add("ipv6")
        if account.transport == "TLS":
            needs.add("tls")
    for inst in instances_with_srtp(instances):
        needs.add("dtls-srtp" if getattr(inst.data, "srtp_keying", "sdes") == "dtls"
                  else "srtp-sdes")
    return needs


def instances_with_srtp(instances: Iterable[Any]) -> list[Any]:
    """Instances whose ``srtp`` key (where the format has one) asks for SRTP at all."""
    return [inst for inst in instances
            if getattr(inst.data, "srtp", "disabled") not in ("disabled", None, "")]
