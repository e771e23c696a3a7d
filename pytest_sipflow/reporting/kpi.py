"""SLO KPIs of a load run (``--sipflow-repeat``): ASR, post-dial delay, setup and
registration times, MOS; the file's ``"slo"`` object checked against them.

Times are the caller's view, from each instance's own SIP records: its first initial
INVITE to the first 180/183 (PDD) and 2xx (setup) it received for that Call-ID; its first
REGISTER to the 2xx (registration, challenges included). Plots are in ``kpi_svg``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..format.slo import SLO_KEYS, Slo, parse_slo
from ..sip.message import SipMessage, parse
from .trace import SipRecord, as_records

__all__ = ["SLO_KEYS", "Slo", "parse_slo", "Iteration", "Kpis", "check_slo", "percentile"]


@dataclass(frozen=True)
class Iteration:
    """One run of the scenario in a load: its outcome, its records, its MOS if measured."""

    index: int
    passed: bool
    records: tuple[SipRecord, ...] = ()
    mos: float | None = None

    @classmethod
    def of(cls, index: int, passed: bool, records: Iterable[SipRecord | Mapping[str, Any]],
           mos: float | None = None) -> Iteration:
        return cls(index, passed, tuple(as_records(records)), mos)

    @classmethod
    def from_document(cls, index: int, document: Mapping[str, Any]) -> Iteration:
        """From a ``--sipflow-json`` result document (``mos`` when the document has one)."""
        return cls.of(index, document.get("outcome") == "passed",
                      document.get("messages") or (), document.get("mos"))


@dataclass(frozen=True)
class CallTimes:
    """One call attempt as its caller saw it."""

    started: float  # epoch seconds of the INVITE
    pdd_ms: float | None
    setup_ms: float | None  # None: not answered

    @property
    def answered(self) -> bool:
        return self.setup_ms is not None


def call_times(records: Iterable[SipRecord]) -> tuple[list[CallTimes], list[float]]:
    """(call attempts, registration times in ms) in the records of one iteration."""
    invites: dict[tuple[str, str], float] = {}
    ringing: dict[tuple[str, str], float] = {}
    answers: dict[tuple[str, str], float] = {}
    registers: dict[tuple[str, str], float] = {}
    registered: dict[tuple[str, str], float] = {}
    for r in sorted(records, key=lambda r: r.t):
        message = parse(r.data)
        key = (r.instance, r.sip_call_id or message.call_id or "")
        method = (message.cseq[1] or "").upper()
        if r.direction == "tx" and message.method == "INVITE" and _initial(message):
            invites.setdefault(key, r.t)
        elif r.direction == "tx" and message.method == "REGISTER":
            registers.setdefault(key, r.t)
        elif r.direction == "rx" and message.status is not None:
            if method == "INVITE" and key in invites:
                if message.status in (180, 183):
                    ringing.setdefault(key, r.t)
                elif 200 <= message.status < 300:
                    answers.setdefault(key, r.t)
            elif method == "REGISTER" and key in registers and 200 <= message.status < 300:
                registered.setdefault(key, r.t)
    calls = [CallTimes(t, _ms(t, ringing.get(key)), _ms(t, answers.get(key)))
             for key, t in invites.items()]
    regs = [(registered[key] - t) * 1000 for key, t in registers.items() if key in registered]
    return calls, regs


def _initial(message: SipMessage) -> bool:
    return ";tag=" not in (message.headers.get("To") or "").replace(" ", "").lower()


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else (end - start) * 1000


def percentile(values: Iterable[float], q: int) -> float | None:
    """The ``q``-th percentile (1..99), linear between samples ("inclusive"); None if empty."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[q - 1]


@dataclass
class Kpis:
    iterations: int = 0
    passed: int = 0
    calls: list[CallTimes] = field(default_factory=list)
    register_ms: list[float] = field(default_factory=list)
    mos: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, iterations: Iterable[Iteration]) -> Kpis:
        kpis = cls()
        for it in iterations:
            kpis.iterations += 1
            kpis.passed += it.passed
            calls, regs = call_times(it.records)
            kpis.calls += calls
            kpis.register_ms += regs
            if it.mos is not None:
                kpis.mos.append(it.mos)
        return kpis

    @property
    def answered(self) -> int:
        return sum(c.answered for c in self.calls)

    @property
    def asr(self) -> float | None:
        """Answer-seizure ratio: answered calls / call attempts."""
        return self.answered / len(self.calls) if self.calls else None

    @property
    def setup_ms(self) -> list[float]:
        return [c.setup_ms for c in self.calls if c.setup_ms is not None]

    @property
    def pdd_ms(self) -> list[float]:
        return [c.pdd_ms for c in self.calls if c.pdd_ms is not None]

    def series(self, metric: str) -> list[float]:
        return {"Setup": self.setup_ms, "Pdd": self.pdd_ms,
                "Register": self.register_ms}[metric]

    def summary(self) -> dict[str, Any]:
        """Flat JSON-safe KPIs (the results JSON, JUnit properties): the SLO's key names."""
        out: dict[str, Any] = {"iterations": self.iterations, "passed": self.passed,
                               "calls": len(self.calls), "answered": self.answered,
                               "asr": _round(self.asr, 4)}
        for metric in METRICS:
            for q in QUANTILES:
                out[f"p{q}{metric}Ms"] = _round(percentile(self.series(metric), q), 1)
        out["minMos"] = _round(min(self.mos), 2) if self.mos else None
        out["meanMos"] = _round(statistics.fmean(self.mos), 2) if self.mos else None
        return out

    def text(self) -> str:
        """One line per KPI, for the terminal."""
        s = self.summary()
        lines = [f"iterations {s['iterations']} ({s['passed']} passed), calls {s['calls']}, "
                 f"answered {s['answered']}, ASR {_show(s['asr'])}"]
        for metric, words in (("Pdd", "post-dial delay"), ("Setup", "setup time"),
                              ("Register", "registration time")):
            if self.series(metric):
                lines.append(f"{words}: " + ", ".join(
                    f"p{q} {s[f'p{q}{metric}Ms']:.1f} ms" for q in QUANTILES))
        if self.mos:
            lines.append(f"MOS: min {s['minMos']}, mean {s['meanMos']}")
        return "\n".join(lines)


METRICS = ("Setup", "Pdd", "Register")
QUANTILES = (50, 95, 99)
WORDS = {"Setup": "setup", "Pdd": "post-dial delay", "Register": "registration time"}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def check_slo(slo: Slo, kpis: Kpis) -> list[str]:
    """One line per missed objective, ``expected … actual …``; empty when all are met."""
    out = []
    if slo.asr is not None:
        if kpis.asr is None:
            out.append(f"expected ASR ≥ {slo.asr:g}, actual: no call was attempted")
        elif kpis.asr < slo.asr:
            out.append(f"expected ASR ≥ {slo.asr:g}, actual {kpis.asr:.4g} "
                       f"({kpis.answered} of {len(kpis.calls)} calls answered)")
    for metric in METRICS:
        for q in QUANTILES:
            limit = getattr(slo, f"p{q}_{metric.lower()}_ms")
            if limit is None:
                continue
            actual = percentile(kpis.series(metric), q)
            expected = f"expected p{q} {WORDS[metric]} ≤ {limit:g} ms"
            if actual is None:
                out.append(f"{expected}, actual: nothing measured")
            elif actual > limit:
                out.append(f"{expected}, actual {actual:.1f} ms")
    if slo.min_mos is not None:
        if not kpis.mos:
            out.append(f"expected MOS ≥ {slo.min_mos:g}, actual: no MOS measured "
                       "(are media checks on?)")
        elif min(kpis.mos) < slo.min_mos:
            out.append(f"expected MOS ≥ {slo.min_mos:g}, actual min {min(kpis.mos):.2f}")
    return out
