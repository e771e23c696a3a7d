"""One call's media statistics as the agent reports them, with a MOS per direction.

Plain dataclasses with a strict ``from_dict`` / JSON-safe ``to_dict`` (snake_case keys, the
agent protocol's style) and ``format_table`` for the failure report. ``rx`` is what this
side received from its peer (measured here); ``tx`` is what it sent (counts measured here,
loss and jitter as the peer's RTCP reports told us).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SipflowError
from . import emodel

Way = Literal["rx", "tx"]


class MediaStatsError(SipflowError):
    """A media statistics record that does not have the agreed shape (an agent bug)."""


@dataclass(frozen=True)
class Direction:
    """RTP counters of one direction of one call."""

    packets: int = 0
    bytes: int = 0
    loss: int = 0
    discard: int = 0
    dup: int = 0
    reorder: int = 0
    jitter_mean_ms: float = 0.0
    jitter_max_ms: float = 0.0
    #: runs of consecutive lost packets (pjmedia's loss-period count); None = not known
    loss_bursts: int | None = None
    #: the receiver's mean jitter-buffer delay; None = not known (2 × mean jitter is used)
    jitter_buffer_ms: float | None = None

    @property
    def expected(self) -> int:
        return self.packets + self.loss

    @property
    def loss_percent(self) -> float:
        """Lost plus discarded (too late for the jitter buffer): both are gaps one hears."""
        if self.expected <= 0:
            return 0.0
        return min(100.0, 100.0 * (self.loss + self.discard) / self.expected)

    @property
    def burst_ratio(self) -> float | None:
        """BurstR measured from the loss runs; None when the runs are unknown."""
        if self.loss_bursts is None:
            return None
        return emodel.burst_ratio(self.packets, self.loss, self.loss_bursts)


@dataclass(frozen=True)
class MediaStats:
    """A sample of one call's media: codec, both directions, RTT, addresses, SRTP."""

    codec: str
    payload_type: int
    clock_rate: int
    duration_s: float
    rx: Direction = Direction()
    tx: Direction = Direction()
    ptime_ms: float = 20.0
    rtt_ms: float | None = None
    remote_rtp: str | None = None
    first_packet_ms: float | None = None
    srtp: bool = False
    crypto_suite: str | None = None

    @property
    def codec_label(self) -> str:
        return f"{self.codec}/{self.clock_rate}"

    def delay_ms(self, way: Way) -> float:
        """Ta of a direction: RTT/2 + jitter buffer + packetization + codec look-ahead."""
        d = self.rx if way == "rx" else self.tx
        jb = d.jitter_buffer_ms if d.jitter_buffer_ms is not None else 2 * d.jitter_mean_ms
        return emodel.one_way_delay_ms(self.rtt_ms, jb, self.ptime_ms,
                                       emodel.codec(self.codec).lookahead_ms)

    def mos(self, way: Way) -> emodel.Estimate | None:
        """E-model estimate of a direction; None when no packet of it was counted."""
        d = self.rx if way == "rx" else self.tx
        if d.expected <= 0:
            return None
        burst = d.burst_ratio
        return emodel.estimate(self.codec, d.loss_percent, 1.0 if burst is None else burst,
                               self.delay_ms(way))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; ``mos`` is derived and ignored by :meth:`from_dict`."""
        out = dataclasses.asdict(self)
        out["mos"] = {}
        for way in ("rx", "tx"):
            est = self.mos(way)
            out["mos"][way] = None if est is None else {
                "mos": round(est.mos, 2), "r": round(est.r, 1),
                "burst_ratio": round(est.burst_ratio, 2), "delay_ms": round(est.delay_ms, 1)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaStats:
        """Strict: unknown keys and wrong types are refused, naming the key."""
        if not isinstance(data, Mapping):
            raise MediaStatsError(f"media stats: expected an object, got {type(data).__name__}")
        body = {k: v for k, v in data.items() if k != "mos"}
        for way in ("rx", "tx"):
            if way in body:
                body[way] = Direction(**_fields(Direction, body[way], f"media stats {way}"))
        return cls(**_fields(cls, body, "media stats"))


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
    "Direction": (Direction,),
}


def _fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise MediaStatsError(f"{where}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise MediaStatsError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    missing = sorted(n for n, f in fields.items()
                     if n not in data and f.default is dataclasses.MISSING)
    if missing:
        raise MediaStatsError(f"{where}: missing key(s) {missing}")
    for name, value in data.items():
        kind = str(fields[name].type)
        optional = kind.endswith("| None")
        base = kind.removesuffix(" | None")
        if value is None and optional:
            continue
        ok = isinstance(value, _TYPES[base]) and (base == "bool" or not isinstance(value, bool))
        if not ok:
            raise MediaStatsError(f"{where}: {name!r} must be {kind}, got {value!r}")
    return dict(data)


# -- the failure report's table ------------------------------------------------------------

_HEAD = ("call", "dir", "codec", "pkts", "lost", "loss%", "jitter ms", "MOS", "R", "BurstR",
         "delay ms", "RTT ms", "SRTP", "remote RTP")


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rows(label: str, s: MediaStats) -> list[tuple[str, ...]]:
    rows = []
    for way in ("rx", "tx"):
        d = s.rx if way == "rx" else s.tx
        est = s.mos(way)
        first = way == "rx"
        rows.append((
            label if first else "", way, s.codec_label if first else "", str(d.packets),
            str(d.loss), _num(d.loss_percent),
            f"{d.jitter_mean_ms:.1f}/{d.jitter_max_ms:.1f}",
            _num(est.mos if est else None, 2), _num(est.r if est else None),
            _num(d.burst_ratio, 2), _num(s.delay_ms(way), 0),
            _num(s.rtt_ms) if first else "",
            ((s.crypto_suite or "yes") if s.srtp else "no") if first else "",
            (s.remote_rtp or "-") if first else "",
        ))
    return rows


def format_table(stats_by_call: Mapping[str, MediaStats | None]) -> str:
    """A plain-text table, two rows (rx, tx) per call, for the failure report.

    Jitter is mean/max; BurstR "-" means the loss runs were not known (1 was assumed).
    """
    rows: list[tuple[str, ...]] = [_HEAD]
    for label, s in stats_by_call.items():
        if s is None:
            rows.append((label, "-", "no media session") + ("",) * (len(_HEAD) - 3))
        else:
            rows += _rows(label, s)
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
