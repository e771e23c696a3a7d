"""ITU-T G.107 E-model: a listening-quality MOS estimate for one direction of a call.

R = Ro − Is − Id − Ie,eff + A, with the terminal parameters at G.107's Table 3 defaults, the
delay from the measured one-way delay, Ie/Bpl per codec (G.113 Appendix I) and the burst
ratio measured from the loss pattern. docs/media.md gives the sources and the limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Terminal:
    """G.107 Table 3 default values (both handsets, no noise, no echo problem)."""

    slr: float = 8.0       # send loudness rating, dB
    rlr: float = 2.0       # receive loudness rating, dB
    stmr: float = 15.0     # sidetone masking rating, dB
    lstr: float = 18.0     # listener sidetone rating, dB
    ds: float = 3.0        # D-value of the sending telephone
    telr: float = 65.0     # talker echo loudness rating, dB
    wepl: float = 110.0    # weighted echo path loss, dB
    qdu: float = 1.0       # quantizing distortion units
    nc: float = -70.0      # circuit noise, dBm0p
    nfor: float = -64.0    # noise floor at the receive side, dBmp
    ps: float = 35.0       # room noise at the send side, dB(A)
    pr: float = 35.0       # room noise at the receive side, dB(A)


DEFAULTS = Terminal()


def _log(x: float) -> float:
    return math.log10(x)


def noise_sum(t: Terminal = DEFAULTS) -> float:
    """No (dBm0p): circuit, room and floor noise added on the power scale (G.107 §7.2)."""
    olr = t.slr + t.rlr
    nos = t.ps - t.slr - t.ds - 100 + 0.004 * (t.ps - olr - t.ds - 14) ** 2
    pre = t.pr + 10 * _log(1 + 10 ** ((10 - t.lstr) / 10))
    nor = t.rlr - 121 + pre + 0.008 * (pre - 35) ** 2
    nfo = t.nfor + t.rlr
    return 10 * _log(sum(10 ** (n / 10) for n in (t.nc, nos, nor, nfo)))


def basic_ratio(t: Terminal = DEFAULTS) -> float:
    """Ro, the basic signal-to-noise ratio: 15 − 1.5 (SLR + No)."""
    return 15 - 1.5 * (t.slr + noise_sum(t))


def _stmro(t: Terminal, echo_ms: float) -> float:
    return -10 * _log(10 ** (-t.stmr / 10) + math.exp(-echo_ms / 4) * 10 ** (-t.telr / 10))


def _ist(stmro: float) -> float:
    def term(shift: float, scale: float, power: float) -> float:
        return (1 + ((stmro + shift) / scale) ** power) ** (1 / power)
    return 12 * term(-13, 6, 8) - 28 * term(1, 19.4, 35) - 13 * term(-3, 33, 13) + 29


def simultaneous_impairment(t: Terminal = DEFAULTS, echo_ms: float = 0.0) -> float:
    """Is = Iolr + Ist + Iq: loudness, sidetone and quantizing impairments (G.107 §7.3)."""
    no = noise_sum(t)
    ro = basic_ratio(t)
    xolr = t.slr + t.rlr + 0.2 * (64 + no - t.rlr)
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)
    ist = _ist(_stmro(t, echo_ms))
    q = 37 - 15 * _log(t.qdu)
    g = 1.07 + 0.258 * q + 0.0602 * q * q
    y = (ro - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    iq = 15 * _log(1 + 10 ** y + 10 ** z)
    return iolr + ist + iq


def talker_echo(t: Terminal, echo_ms: float) -> float:
    """Idte: talker echo through the far terminal's TELR after ``echo_ms`` one-way."""
    if echo_ms <= 0:
        return 0.0
    roe = -1.5 * (noise_sum(t) - t.rlr)
    terv = (t.telr - 40 * _log((1 + echo_ms / 10) / (1 + echo_ms / 150))
            + 6 * math.exp(-0.3 * echo_ms ** 2))
    if t.stmr < 9:
        terv += _ist(_stmro(t, echo_ms)) / 2
    re = 80 + 2.5 * (terv - 14)
    idte = ((roe - re) / 2 + math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - math.exp(-echo_ms))
    if t.stmr > 20:
        idte = math.sqrt(idte ** 2 + _ist(_stmro(t, echo_ms)) ** 2)
    return idte


def listener_echo(t: Terminal, round_trip_ms: float) -> float:
    """Idle: listener echo over the 4-wire loop (WEPL) with round trip ``round_trip_ms``."""
    ro = basic_ratio(t)
    rle = 10.5 * (t.wepl + 7) * (round_trip_ms + 1) ** -0.25
    return (ro - rle) / 2 + math.sqrt((ro - rle) ** 2 / 4 + 169)


def pure_delay(ta_ms: float) -> float:
    """Idd for absolute one-way delay Ta, with G.107's defaults mT = 100 ms and sT = 1."""
    if ta_ms <= 100:
        return 0.0
    x = _log(ta_ms / 100) / _log(2)
    return 25 * ((1 + x ** 6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)


def delay_impairment(ta_ms: float, t: Terminal = DEFAULTS) -> float:
    """Id = Idte + Idle + Idd, taking the echo path T = Ta and the loop round trip Tr = 2 Ta."""
    return talker_echo(t, ta_ms) + listener_echo(t, 2 * ta_ms) + pure_delay(ta_ms)


def effective_ie(ie: float, bpl: float, ppl: float, burst_ratio: float = 1.0) -> float:
    """Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl/BurstR + Bpl); ``ppl`` in percent."""
    if ppl <= 0:
        return ie
    return ie + (95 - ie) * ppl / (ppl / burst_ratio + bpl)


def r_to_mos(r: float) -> float:
    """G.107 Annex B: MOS (conversational quality estimate) from the rating R.

    The cubic dips a hair below 1 for R < 6.5; it is held at 1 there.
    """
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return max(1.0, 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6)


# -- burst ratio ---------------------------------------------------------------------------


def burst_ratio(received: int, lost: int, bursts: int) -> float:
    """BurstR of a 2-state Markov loss model fitted to counts: 1/(p+q).

    p = P(found→lost) ≈ bursts/received, q = P(lost→found) ≈ bursts/lost. Random loss gives
    ≈ 1, loss in runs gives > 1. Without both received and lost packets the pattern says
    nothing and 1 is returned.
    """
    if received <= 0 or lost <= 0 or bursts <= 0:
        return 1.0
    return 1 / (bursts / received + bursts / lost)


def loss_runs(flags: Iterable[bool]) -> tuple[int, int, int]:
    """(received, lost, bursts) of a packet sequence; ``True`` = packet arrived."""
    received = lost = bursts = 0
    previous = True
    for arrived in flags:
        if arrived:
            received += 1
        else:
            lost += 1
            bursts += previous
        previous = arrived
    return received, lost, bursts


def burst_ratio_of(flags: Iterable[bool]) -> float:
    """BurstR measured from a sequence of arrived (True) / lost (False) flags."""
    return burst_ratio(*loss_runs(flags))


# -- codecs and delay ----------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """Per-codec E-model inputs; ``source`` says where Ie and Bpl come from."""

    name: str
    ie: float
    bpl: float
    lookahead_ms: float
    source: str


_G113 = "G.113 Appendix I"
CODECS: dict[str, Codec] = {c.name.lower(): c for c in (
    Codec("PCMU", 0, 25.1, 0, f"{_G113} (G.711 with PLC; pjmedia conceals G.711 loss)"),
    Codec("PCMA", 0, 25.1, 0, f"{_G113} (G.711 with PLC; pjmedia conceals G.711 loss)"),
    Codec("G729", 11, 19.0, 5, f"{_G113} (G.729A + VAD)"),
    Codec("G723", 15, 16.1, 7.5, f"{_G113} (G.723.1 6.3 kbit/s + VAD)"),
    Codec("GSM", 20, 10.0, 0, f"Ie: {_G113} (GSM 06.10 full rate); "
                              "Bpl: not in G.113, assumed 10"),
    Codec("G722", 0, 25.1, 1.5, "not in G.113 Appendix I (narrowband table), assumed as "
                                "G.711 with PLC"),
    Codec("speex", 11, 19.0, 10, "not in G.113, assumed as G.729A (CELP at a similar rate)"),
    Codec("iLBC", 11, 19.0, 5, "not in G.113, assumed as G.729A"),
    Codec("opus", 0, 25.1, 6.5, "not in G.113, assumed as G.711 with PLC"),
)}
#: G.711 without PLC (G.113 Appendix I), for callers whose receiver does no concealment.
G711_NO_PLC = Codec("G711-noPLC", 0, 4.3, 0, f"{_G113} (G.711 without PLC)")


def codec(name: str) -> Codec:
    """E-model inputs for an SDP/pjmedia codec name (``"PCMU"``, ``"speex/16000"``…).

    An unknown codec is rated as G.711 with PLC and says so in ``source``.
    """
    key = name.split("/")[0].strip().lower()
    if key in CODECS:
        return CODECS[key]
    return Codec(name, 0, 25.1, 0, f"{name!r} not in G.113, assumed as G.711 with PLC")


def one_way_delay_ms(rtt_ms: float | None = None, jitter_buffer_ms: float = 0.0,
                     packetization_ms: float = 20.0, codec_ms: float = 0.0) -> float:
    """Ta: network (RTT/2 when RTCP measured it, else 0) + jitter buffer + packetization +
    codec look-ahead."""
    network = rtt_ms / 2 if rtt_ms is not None and rtt_ms > 0 else 0.0
    return network + max(jitter_buffer_ms, 0.0) + max(packetization_ms, 0.0) + codec_ms


# -- the estimate --------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """One direction's rating and what went into it (shown in failure messages)."""

    r: float
    mos: float
    codec: str
    loss_percent: float
    burst_ratio: float
    delay_ms: float
    ie_eff: float
    id: float


def estimate(codec_name: str, loss_percent: float = 0.0, burst_ratio: float = 1.0,
             delay_ms: float = 0.0, advantage: float = 0.0,
             terminal: Terminal = DEFAULTS) -> Estimate:
    """R and MOS for one direction; ``delay_ms`` is Ta (see :func:`one_way_delay_ms`)."""
    c = codec(codec_name)
    ppl = min(max(loss_percent, 0.0), 100.0)
    ie_eff = effective_ie(c.ie, c.bpl, ppl, burst_ratio)
    delay = max(delay_ms, 0.0)
    idt = delay_impairment(delay, terminal)
    r = (basic_ratio(terminal) - simultaneous_impairment(terminal, delay) - idt - ie_eff
         + advantage)
    return Estimate(r=r, mos=r_to_mos(r), codec=c.name, loss_percent=ppl,
                    burst_ratio=burst_ratio, delay_ms=delay, ie_eff=ie_eff, id=idt)
