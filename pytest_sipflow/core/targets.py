"""Where a ``targetUri`` leads: one rule for MakeCall, BlindTransfer and ``UserAgent.call``."""

from __future__ import annotations

from .failures import StepFailed


class Directory:
    """Names reachable in a run: dns, instance names and peers → their SIP URIs."""

    def __init__(self) -> None:
        self._uris: dict[str, str] = {}

    def add(self, uri: str, *names: str) -> None:
        """First come, first served: a dn keeps the URI of the first instance that has it."""
        for name in names:
            if name:
                self._uris.setdefault(name, uri)

    def get(self, name: str) -> str | None:
        return self._uris.get(name)

    def names(self) -> list[str]:
        return list(self._uris)

    def __contains__(self, name: str) -> bool:
        return name in self._uris


def resolve(target: str, directory: Directory, domain: str | None = None) -> str:
    """A ``sip:``/``sips:`` URI is used as written. In real mode (``domain`` given) a dn is
    ``sip:<dn>@<domain>`` and goes through the server; in local mode a dn or name is the
    address of the instance that has it. ``user@host`` becomes ``sip:user@host``."""
    if target.startswith(("sip:", "sips:")):
        return target
    if "@" in target:
        return f"sip:{target}"
    if domain:
        return f"sip:{target}@{domain}"
    found = directory.get(target)
    if found:
        return found
    raise StepFailed(f"bad target {target!r}: not a sip: URI, not user@host, and no instance "
                     "here has this dn or name",
                     expected="a dn of this scenario or a sip: URI", actual=repr(target))
