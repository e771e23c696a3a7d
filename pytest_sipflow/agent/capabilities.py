"""What this installation's pjsua2 can do: the probe process, its verdicts, skip reasons.

The probe (``agent/pj/probe.py``) runs in a throwaway process, never in an agent that
serves tests: a wheel without IPv6 aborts on an IPv6 account. Parsing is pure.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Iterable

from ..sip.address import split_host_port

#: What an item may need; the names ``skip_reason`` understands.
NEEDS = ("tls", "srtp-sdes", "dtls-srtp", "ipv6")
LABELS = {"tls": "TLS", "srtp-sdes": "SRTP-SDES", "dtls-srtp": "DTLS-SRTP", "ipv6": "IPv6"}
IPV6_REASON = "IPv6: the installed pjsua2 wheel was built without IPv6 support"
#: The probe normally ends in ~0.3 s; past this it is stuck and its verdicts are unknown.
PROBE_TIMEOUT_S = 20.0

_ASSERT = re.compile(r"(\w+): Assertion [`'](.+?)' failed")


@dataclass(frozen=True)
class Verdict:
    ok: bool | None  # None: not known (the probe died or timed out before this check)
    why: str = ""

    def describe(self) -> str:
        word = {True: "yes", False: "no", None: "unknown"}[self.ok]
        return f"{word} ({self.why})" if self.why and not self.ok else word


@dataclass(frozen=True)
class Capabilities:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    codecs: tuple[str, ...] = ()

    def verdict(self, need: str) -> Verdict:
        return self.verdicts.get(need, Verdict(None, "not probed"))

    def describe(self) -> str:
        """``TLS yes, …, IPv6 no (…), codecs PCMU/8000 …`` for the report header."""
        parts = [f"{LABELS[n]} {self.verdict(n).describe()}" for n in NEEDS]
        codecs = " ".join(c[:-2] if c.endswith("/1") else c for c in self.codecs)
        return ", ".join(parts) + f", codecs {codecs or 'unknown'}"


def to_json(caps: Capabilities) -> dict[str, object]:
    return {"verdicts": {k: [v.ok, v.why] for k, v in caps.verdicts.items()},
            "codecs": list(caps.codecs)}


def from_json(value: object) -> Capabilities | None:
    """Capabilities kept by an earlier run, or None when the value is not such a record."""
    try:
        verdicts = {str(k): Verdict(ok, str(why))
                    for k, (ok, why) in value["verdicts"].items()}  # type: ignore[index]
        codecs = tuple(str(c) for c in value["codecs"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return Capabilities(verdicts, codecs)


def wheel_key() -> str | None:
    """Names the installed pjsua2 (path, size, mtime) without importing it: a verdict
    kept under this key holds until the wheel changes."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("pjsua2")
    origin = spec.origin if spec is not None else None
    if not origin:
        return None
    folder = os.path.dirname(origin)
    try:  # the package's folder holds the compiled extension
        stats = [os.stat(e.path) for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return None
    return (f"{folder}|{sum(s.st_size for s in stats)}|{max(s.st_mtime_ns for s in stats)}"
            f"|{sys.version_info[:2]}")


#: Verdicts found in this process, by wheel key (in-process pytester runs probe once).
_FOUND: dict[str, Capabilities] = {}


def remembered(key: str | None) -> Capabilities | None:
    return _FOUND.get(key) if key else None


def remember(key: str | None, found: Capabilities) -> None:
    if key and all(v.ok is not None for v in found.verdicts.values()):
        _FOUND[key] = found


def parse_probe(stdout: str, stderr: str, returncode: int | None) -> Capabilities:
    """The verdicts of one probe run: its JSON lines, and how it ended.

    A process that died after ``ipv6-start`` was killed by the wheel's IPv6 assert: that
    is a "no", with the assertion as the reason. Lines that are not JSON (pjlib's
    start-up banner) are ignored.
    """
    verdicts: dict[str, Verdict] = {}
    codecs: tuple[str, ...] = ()
    started_ipv6 = False
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        check = record.get("check")
        if check == "codecs":
            codecs = tuple(str(c) for c in record.get("value") or ())
        elif check == "ipv6-start":
            started_ipv6 = True
        elif check in NEEDS:
            verdicts[check] = Verdict(bool(record.get("ok")), str(record.get("why") or ""))
    if "ipv6" not in verdicts and started_ipv6 and returncode not in (0, None):
        found = _ASSERT.search(stderr)
        why = (f"{found.group(1)} asserts {found.group(2)}" if found else
               f"the probe process died with status {returncode}")
        verdicts["ipv6"] = Verdict(False, why)
    for need in NEEDS:
        if need not in verdicts:
            detail = "the probe timed out" if returncode is None else \
                f"the probe ended (status {returncode}) before this check"
            verdicts[need] = Verdict(None, detail)
    return Capabilities(verdicts, codecs)


class Probe:
    """The probe process, started at once and read when its verdict is first needed."""

    def __init__(self, timeout: float = PROBE_TIMEOUT_S) -> None:
        self._timeout = timeout
        self._result: Capabilities | None = None
        self._proc: subprocess.Popen[str] | None = None
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pytest_sipflow.agent.pj.probe"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, errors="replace")
        except OSError as exc:
            self._result = Capabilities({n: Verdict(None, f"the probe did not start: {exc}")
                                         for n in NEEDS})

    def result(self) -> Capabilities:
        if self._result is None:
            assert self._proc is not None
            proc, self._proc = self._proc, None
            try:
                out, err = proc.communicate(timeout=self._timeout)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                code = None
            self._result = parse_probe(out, err, code)
        return self._result

    def close(self) -> None:
        """Reap the process if nobody asked for the verdict (it ends by itself quickly)."""
        if self._proc is not None:
            self.result()


def skip_reason(capabilities: Capabilities, needs: Iterable[str]) -> str | None:
    """Why an item needing ``needs`` (names of :data:`NEEDS`) cannot run here, or None."""
    for need in needs:
        verdict = capabilities.verdict(need)
        if verdict.ok:
            continue
        detail = f" ({verdict.why})" if verdict.why else ""
        if need == "ipv6":
            return IPV6_REASON + detail
        return f"{LABELS.get(need, need)}: not available in the installed pjsua2 wheel{detail}"
    return None


def is_ipv6(host_port: str | None) -> bool:
    """True for ``::1``, ``[::1]:5060``, ``sip:[::1]:5060;lr`` (an IPv6 literal host)."""
    if not host_port:
        return False
    text = re.sub(r"^\s*<?sips?:([^@;>]*@)?", "", host_port).split(";", 1)[0].rstrip(">")
    try:
        host, _ = split_host_port(text)
    except ValueError:
        return False
    return ":" in host
