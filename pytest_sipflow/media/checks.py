"""The ``expectMedia`` check: its pydantic model (embedded by the scenario schema) and
``evaluate``, which turns one call's :class:`MediaStats` into failure sentences that name
the direction and say expected vs actual. The quality keys judge what this side received.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.alias_generators import to_camel

from .stats import MediaStats

_RX_QUALITY = ("min_packets", "max_loss_percent", "max_jitter_ms", "min_mos")


class ExpectMedia(BaseModel):
    """What a node expects of its call's media; every key optional, at least one given."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              frozen=True)

    received: StrictBool | None = None
    sent: StrictBool | None = None
    min_packets: Annotated[StrictInt, Field(ge=0)] | None = None
    max_loss_percent: Annotated[float, Field(strict=True, ge=0, le=100)] | None = None
    max_jitter_ms: Annotated[float, Field(strict=True, ge=0)] | None = None
    min_mos: Annotated[float, Field(strict=True, ge=1, le=5)] | None = None
    codec: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.+-]+(/\d+)?$")] | None = None
    srtp: StrictBool | None = None

    @classmethod
    def known_keys(cls) -> list[str]:
        """The camelCase keys a file may write (for the schema's did-you-mean)."""
        return [to_camel(name) for name in cls.model_fields]

    @model_validator(mode="after")
    def _coherent(self) -> ExpectMedia:
        if not self.model_fields_set:
            raise ValueError("expectMedia is empty: give at least one key, e.g. "
                             '{"received": true}')
        if self.received is False:
            clash = [to_camel(k) for k in _RX_QUALITY if getattr(self, k) is not None]
            if clash:
                raise ValueError(f"expectMedia says received: false but also sets {clash}, "
                                 "which judge received audio; drop one or the other")
        if self.min_mos is not None and self.min_mos > 4.5:
            raise ValueError(f"expectMedia minMos {self.min_mos} can never be met: the E-model's "
                             "MOS tops out at 4.5 (a clean G.711 call rates 4.4)")
        return self


def _fmt(value: float) -> str:
    return f"{value:g}"


def evaluate(expect: ExpectMedia, stats: MediaStats | None, me: str = "bob",
             peer: str = "alice") -> list[str]:
    """Failures of ``expect`` on ``stats`` of ``me``'s call with ``peer``; [] = passed."""
    if stats is None:
        return [f"{me} has no media session with {peer} (no audio stream was negotiated) "
                f"— expected {expect.model_dump(by_alias=True, exclude_none=True)}"]
    out: list[str] = []
    span = f"in {stats.duration_s:.1f} s"
    rx, tx = stats.rx, stats.tx
    need_rx = None
    if expect.received or expect.min_packets is not None:
        need_rx = max(expect.min_packets or 0, 1 if expect.received else 0)
    if expect.received is False and rx.packets > 0:
        out.append(f"{me} received {rx.packets} RTP packets from {peer} {span} "
                   f"(expected none)")
    elif need_rx is not None and rx.packets < need_rx:
        what = " — one-way audio" if rx.packets == 0 and tx.packets > 0 else (
            " — no audio either way" if rx.packets == 0 else "")
        out.append(f"{me} received {rx.packets} RTP packets from {peer} {span}{what} "
                   f"(expected ≥ {need_rx})")
    if expect.sent is True and tx.packets == 0:
        out.append(f"{me} sent 0 RTP packets to {peer} {span} — {peer} cannot hear {me} "
                   f"(expected ≥ 1)")
    elif expect.sent is False and tx.packets > 0:
        out.append(f"{me} sent {tx.packets} RTP packets to {peer} {span} (expected none)")
    direction = f"{peer} → {me}"
    if rx.packets > 0:
        if expect.max_loss_percent is not None and rx.loss_percent > expect.max_loss_percent:
            out.append(f"{direction}: {rx.loss_percent:.1f} % of RTP packets lost or discarded "
                       f"({rx.loss + rx.discard} of {rx.expected}) "
                       f"(expected ≤ {_fmt(expect.max_loss_percent)} %)")
        if expect.max_jitter_ms is not None and rx.jitter_max_ms > expect.max_jitter_ms:
            out.append(f"{direction}: jitter up to {rx.jitter_max_ms:.1f} ms (mean "
                       f"{rx.jitter_mean_ms:.1f} ms) "
                       f"(expected ≤ {_fmt(expect.max_jitter_ms)} ms)")
        est = stats.mos("rx")
        if expect.min_mos is not None and est is not None and est.mos < expect.min_mos:
            burst = "measured" if rx.burst_ratio is not None else "assumed"
            out.append(f"{direction}: MOS {est.mos:.2f} (R {est.r:.1f}; {est.codec}, loss "
                       f"{est.loss_percent:.1f} %, burst ratio {est.burst_ratio:.2f} {burst}, "
                       f"one-way delay {est.delay_ms:.0f} ms) "
                       f"(expected ≥ {_fmt(expect.min_mos)})")
    if expect.codec is not None and not _same_codec(expect.codec, stats):
        out.append(f"{me} ↔ {peer}: codec {stats.codec_label} (payload type "
                   f"{stats.payload_type}) (expected {expect.codec})")
    if expect.srtp is True and not stats.srtp:
        out.append(f"{me} ↔ {peer}: media is plain RTP, not encrypted (expected SRTP)")
    elif expect.srtp is False and stats.srtp:
        out.append(f"{me} ↔ {peer}: media is SRTP ({stats.crypto_suite or 'suite unknown'}) "
                   f"(expected plain RTP)")
    return out


def _same_codec(wanted: str, stats: MediaStats) -> bool:
    name, _, rate = wanted.partition("/")
    if name.lower() != stats.codec.lower():
        return False
    return not rate or int(rate) == stats.clock_rate
