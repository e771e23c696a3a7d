"""Media checks of a call, once for the engine's nodes and the Python API: read the agent's
RTP statistics, take the window a MEDIA node watched, name the peer, and fail with the
sentences of ``media.checks.evaluate`` (direction named, expected vs actual).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

from ..media.checks import ExpectMedia, evaluate
from ..media.stats import Direction, MediaStats
from ..sip.message import parse
from .failures import StepFailed
from .mailbox import Event
from .phone import Phone

_COUNTS = ("packets", "bytes", "loss", "discard", "dup", "reorder")
_URI = re.compile(r"<?(sips?:[^>;\s]+)")


def sample(phone: Phone, handle: str) -> MediaStats | None:
    """The live call's statistics now (None: no audio stream); kept for the reports."""
    stats = phone.request("media_stats", call=handle).get("stats")
    phone.media[handle] = stats
    return None if stats is None else MediaStats.from_dict(stats)


def final(phone: Phone, ev: Event) -> MediaStats | None:
    """The statistics a ``disconnected`` event carries (the stream's last numbers)."""
    if "media" not in ev.raw:
        raise StepFailed(f"no media statistics on the end of call {ev.call} of instance "
                         f"{phone.name!r}: the agent was not asked to watch its media",
                         expected="the call's final RTP statistics", actual="none taken")
    stats = ev.raw["media"]
    phone.media[str(ev.call)] = stats
    return None if stats is None else MediaStats.from_dict(stats)


def _minus(after: Direction, before: Direction) -> Direction:
    counts = {k: getattr(after, k) - getattr(before, k) for k in _COUNTS}
    bursts = None if after.loss_bursts is None or before.loss_bursts is None \
        else after.loss_bursts - before.loss_bursts
    return dataclasses.replace(after, **counts, loss_bursts=bursts)


def window(before: MediaStats | None, after: MediaStats | None) -> MediaStats | None:
    """What flowed between two samples of one call (jitter and RTT as of the later one)."""
    if before is None or after is None:
        return after
    return dataclasses.replace(after, rx=_minus(after.rx, before.rx),
                               tx=_minus(after.tx, before.tx),
                               duration_s=max(0.0, after.duration_s - before.duration_s))


def peer_name(phone: Phone, handle: str, names: Mapping[str, str]) -> str:
    """Who is at the other end: the instance with that URI, else the URI's user part."""
    for rec in phone.records():
        if rec.get("call") != handle or not str(rec.get("summary", "")).startswith("INVITE "):
            continue
        msg = parse(str(rec.get("text") or ""))
        header = "To" if rec.get("dir") == "tx" else "From"
        values = msg.header_values(header)
        found = _URI.search(values[0]) if values else None
        if found is None:
            break
        uri = found.group(1)
        bare = {_bare(k): v for k, v in names.items()}
        if uri in names or _bare(uri) in bare:
            return names.get(uri) or bare[_bare(uri)]
        user = uri.split(":", 1)[1].split("@", 1)[0]
        return names.get(user, user)
    return "the peer"


def _bare(uri: str) -> str:
    """``sip:user@host`` without port: pjsua's From carries no port, the URIs do."""
    return re.sub(r"^sips?:|:\d+$", "", uri)


def check(expect: ExpectMedia, stats: MediaStats | None, me: str, peer: str,
          where: str) -> None:
    """Raise ``StepFailed`` with every problem of ``stats`` against ``expect``."""
    problems = evaluate(expect, stats, me, peer)
    if not problems:
        return
    wanted = expect.model_dump(by_alias=True, exclude_none=True)
    raise StepFailed(f"media check on {where} failed: " + "; ".join(problems),
                     expected=f"expectMedia {wanted}", actual=describe(stats))


def describe(stats: MediaStats | None) -> str:
    """One line of a sample, for ``actual:``."""
    if stats is None:
        return "no audio stream"
    est = stats.mos("rx")
    mos = f", MOS {est.mos:.2f}" if est is not None else ""
    srtp = f"SRTP {stats.crypto_suite or 'yes'}" if stats.srtp else "plain RTP"
    return (f"{stats.codec_label}, {srtp}, in {stats.duration_s:.1f} s: received "
            f"{stats.rx.packets} (lost {stats.rx.loss}), sent {stats.tx.packets}{mos}")


def wanted(expect: Any) -> ExpectMedia:
    """``ExpectMedia`` from keyword arguments (Python API); bad keys raise ValueError."""
    return expect if isinstance(expect, ExpectMedia) else ExpectMedia.model_validate(expect)
