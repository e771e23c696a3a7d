"""A text ladder of an item's SIP messages, like sngrep's call flow, for failure reports.

It shows at a glance which message went where and when (``render_ladder``); ``build_ladder``
gives the same layout as data for other renderers (the HTML SVG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..sip.address import split_address
from .trace import SipRecord, as_records, mask_secrets, wire_messages

MARGIN = 9  # the ms column and its gap
MIN_SPACING, MAX_SPACING = 12, 30


@dataclass(frozen=True)
class Arrow:
    source: int  # column index of the sender
    target: int  # column index of the receiver
    label: str  # method, or status code and reason
    offset_ms: float  # since the item's first message
    record: SipRecord


@dataclass(frozen=True)
class Group:
    call_id: str | None
    keys: tuple[tuple[str, str], ...]  # (instance, callId key), in column order
    arrows: tuple[Arrow, ...]

    @property
    def label(self) -> str:
        keys = ", ".join(f"{instance} '{key}'" for instance, key in self.keys)
        call = f"Call-ID {self.call_id}" if self.call_id else "no Call-ID"
        return f"{keys} ({call})" if keys else call


@dataclass(frozen=True)
class Ladder:
    columns: tuple[str, ...]  # instance ids, then foreign parties' names
    groups: tuple[Group, ...]
    omitted: int  # earlier messages left out by ``last``

    @property
    def shown(self) -> int:
        return sum(len(g.arrows) for g in self.groups)


def message_label(record: SipRecord) -> str:
    """``INVITE`` for a request, ``180 Ringing`` for a response."""
    summary = record.summary.strip()
    if summary.upper().startswith("SIP/"):
        return summary.split(" ", 1)[1] if " " in summary else summary
    return summary.split(" ", 1)[0]


def build_ladder(records: Iterable[SipRecord | Mapping[str, Any]], *,
                 call_keys: Mapping[tuple[str, str], str] | None = None,
                 parties: Mapping[str, str] | None = None,
                 instances: Sequence[str] | None = None,
                 last: int | None = None) -> Ladder:
    """Columns, Call-ID groups and arrows of the ladder (layout at ``render_ladder``)."""
    records = as_records(records)
    wire = wire_messages(records)
    owner: dict[str, str] = {}
    seen: list[str] = list(instances or [])
    for r in records:
        if r.instance:
            owner.setdefault(r.local, r.instance)
            if r.instance not in seen:
                seen.append(r.instance)
    columns = list(seen)

    def column(address: str) -> int:
        name = owner.get(address) or _party(address, parties or {})
        if name not in columns:
            columns.append(name)
        return columns.index(name)

    for r in wire:  # every column, also for messages cut by ``last``
        column(r.source)
        column(r.destination)
    start = wire[0].t if wire else 0.0
    omitted = max(0, len(wire) - max(0, last)) if last is not None else 0
    shown = wire[omitted:]
    by_call: dict[str | None, list[Arrow]] = {}
    for r in shown:
        arrow = Arrow(column(r.source), column(r.destination), message_label(r),
                      (r.t - start) * 1000, r)
        by_call.setdefault(r.sip_call_id, []).append(arrow)
    keys = call_keys or {}
    groups = tuple(
        Group(call_id, tuple((i, keys[(i, call_id)]) for i in columns
                             if call_id is not None and (i, call_id) in keys), tuple(arrows))
        for call_id, arrows in by_call.items())
    return Ladder(tuple(columns), groups, omitted)


def _party(address: str, parties: Mapping[str, str]) -> str:
    host, _ = split_address(address)
    return parties.get(address) or parties.get(host) or address


def render_ladder(records: Iterable[SipRecord | Mapping[str, Any]], *,
                  call_keys: Mapping[tuple[str, str], str] | None = None,
                  parties: Mapping[str, str] | None = None,
                  instances: Sequence[str] | None = None,
                  last: int | None = 50, width: int = 100,
                  secrets: Iterable[str] = ()) -> str:
    """The text ladder of the records, secrets masked. Layout::

                      alice                         bob
             ms         |                             |
        --- alice 'call-1', bob 'call-1' (Call-ID 4f1c9e0d@127.0.0.1) ---
              0         |-----------INVITE----------->|
              1         |<--------100 Trying----------|

    * one column per instance (in ``instances`` order, else first seen), then one per foreign
      party: an address no instance owns, named by ``parties`` ({"ip:port" or "ip": name}),
      else shown as ``ip:port``;
    * one arrow per message on the wire (``wire_messages``: A's send and B's receive of one
      message are drawn once), labelled with the method or the status line, and the offset
      in ms from the item's first message;
    * messages grouped by SIP Call-ID (groups in order of their first message, time order
      inside), each group headed by the instances' ``callId`` keys from ``call_keys``
      ({(instance, sip_call_id): key});
    * at most the ``last`` messages, with a line saying how many earlier ones were left out;
    * ASCII only, fits ``width`` columns (100) for up to 3 parties at full spacing and up to 7
      at the narrowest; labels and names are cut with ``..``.
    """
    ladder = build_ladder(records, call_keys=call_keys, parties=parties,
                          instances=instances, last=last)
    return mask_secrets(format_ladder(ladder, width), secrets)


def spacing(columns: int, width: int = 100) -> int:
    """Distance between two columns' lines."""
    return max(MIN_SPACING, min(MAX_SPACING, (width - MARGIN) // max(1, columns)))


def format_ladder(ladder: Ladder, width: int = 100) -> str:
    """The text form of a built ladder."""
    if not ladder.groups and not ladder.omitted:
        return "(no SIP messages)"
    step = spacing(len(ladder.columns), width)
    first = min(step // 2, len(cut(ladder.columns[0], step - 1)) // 2 + 2) if ladder.columns else 0
    xs = [MARGIN + first + i * step for i in range(len(ladder.columns))]
    size = MARGIN + step * len(ladder.columns)

    def row() -> list[str]:
        line = [" "] * size
        for x in xs:
            line[x] = "|"
        return line

    names = [" "] * size
    for x, name in zip(xs, ladder.columns):
        name = cut(name, step - 1)
        at = max(0, x - len(name) // 2)
        names[at:at + len(name)] = name
    lines = ["".join(names).rstrip(), "".join(_put(row(), 0, "ms".rjust(MARGIN - 2))).rstrip()]
    if ladder.omitted:
        lines.append(f"... {ladder.omitted} earlier message{'s' if ladder.omitted != 1 else ''}"
                     f" not shown")
    for group in ladder.groups:
        lines.append(cut(f"--- {group.label} ---", width))
        for arrow in group.arrows:
            line = _put(row(), 0, f"{arrow.offset_ms:.0f}".rjust(MARGIN - 2))
            lines.append("".join(_draw(line, xs[arrow.source], xs[arrow.target],
                                       arrow.label, step)).rstrip())
    return "\n".join(lines)


def _draw(line: list[str], a: int, b: int, label: str, step: int) -> list[str]:
    if a == b:  # a message to itself
        return _put(line, a + 1, "<> " + cut(label, step - 4))
    lo, hi = min(a, b), max(a, b)
    for x in range(lo + 1, hi):
        line[x] = "-"
    line[hi - 1 if b > a else lo + 1] = ">" if b > a else "<"
    room = hi - lo - 1 - 4
    text = cut(label, room)
    return _put(line, lo + 3 + (room - len(text)) // 2, text)


def _put(line: list[str], at: int, text: str) -> list[str]:
    line[at:at + len(text)] = text
    return line


def cut(text: str, size: int) -> str:
    """``text`` in at most ``size`` characters, ``..`` marking a cut."""
    if len(text) <= size:
        return text
    return text[:max(0, size - 2)] + ".." if size >= 3 else text[:size]
