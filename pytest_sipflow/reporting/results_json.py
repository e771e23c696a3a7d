"""One JSON document per item: the run history SIPFLOW itself never stored.

The shape (version 1) is documented in docs/results-json.md: a new key may come without a
version change, a key is never renamed, removed or retyped without one. Every string, and
the messages' raw bytes, have the secrets masked.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

from ..engine.result import ScenarioResult
from .trace import SipRecord, as_records, mask_secrets

VERSION = 1


def result_document(result: ScenarioResult, item: str, *, outcome: str | None = None,
                    duration: float | None = None, secrets: Iterable[str] = (),
                    records: Iterable[SipRecord] | None = None) -> dict[str, Any]:
    """The JSON-safe document of one item (shape in docs/results-json.md).

    ``records``: the messages already read into records (the plugin adapts older agents'
    events); default ``result.sip_messages``."""
    secrets = list(secrets)
    failure = result.failure
    doc = {
        "version": VERSION,
        "item": item,
        "scenario": result.name,
        "outcome": outcome or ("passed" if result.passed else "failed"),
        "duration": result.duration if duration is None else duration,
        "state": result.state,
        "failure": None if failure is None else {
            "reason": failure.reason, "node": failure.node, "instance": failure.instance,
            "name": failure.name, "expected": failure.expected, "actual": failure.actual,
            "detail": list(failure.detail)},
        "paths": {chain: list(ids) for chain, ids in result.paths.items()},
        "nodes": {node_id: {"state": n.state, "started": n.started, "ended": n.ended,
                            "message": n.message, "instance": n.instance, "kind": n.kind,
                            "name": n.name, "callId": n.call_id}
                  for node_id, n in result.nodes.items()},
        "events": [event.as_dict() for event in result.events],
        "messages": _messages(result.sip_messages if records is None else records, secrets),
        "media": media_document(getattr(result, "media", {})),
        "recordings": [dict(rec) for rec in getattr(result, "recordings", ())],
    }
    return _mask(doc, secrets)


def media_document(media: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """instance -> callId -> the call's last media statistics with their MOS, or null."""
    from ..media.stats import MediaStats

    return {inst: {key: None if s is None else MediaStats.from_dict(s).to_dict()
                   for key, s in calls.items()} for inst, calls in media.items()}


def media_properties(media: dict[str, dict[str, Any]]) -> list[tuple[str, Any]]:
    """JUnit properties of each call's statistics: ``media.<instance>.<callId>.<name>``."""
    from ..media.stats import MediaStats

    out: list[tuple[str, Any]] = []
    for inst, calls in media.items():
        for key, raw in calls.items():
            if raw is None:
                continue
            s = MediaStats.from_dict(raw)
            mos = s.mos("rx")
            values = {"codec": s.codec_label, "srtp": s.srtp, "rx_packets": s.rx.packets,
                      "tx_packets": s.tx.packets, "rx_loss": s.rx.loss,
                      "rx_loss_percent": round(s.rx.loss_percent, 2),
                      "rx_jitter_max_ms": s.rx.jitter_max_ms,
                      "mos_rx": None if mos is None else round(mos.mos, 2)}
            out += [(f"media.{inst}.{key}.{name}", v) for name, v in values.items()]
    return out


def dumps(document: dict[str, Any]) -> str:
    """The document as indented JSON text (UTF-8 safe, keys in the documented order)."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def file_name(item: str) -> str:
    """A file name for an item's node id, unique enough for one run: ``a_b.py__test_x_1_.json``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", item.replace("::", "__")).strip("_")
    return (name[:180] or "item") + ".json"


def write_result_json(directory: str | os.PathLike[str], document: dict[str, Any]) -> str:
    """Write the document into ``directory`` under ``file_name(item)``; returns the path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, file_name(str(document["item"])))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(dumps(document))
    return path


def _messages(messages: Iterable[Any], secrets: list[str]) -> list[dict[str, Any]]:
    try:
        return [r.masked(secrets).as_dict() for r in as_records(messages)]
    except (KeyError, TypeError, ValueError):  # not (yet) in the record shape: keep as is
        return [dict(m) for m in messages]


def _mask(value: Any, secrets: list[str]) -> Any:
    if not secrets:
        return value
    if isinstance(value, str):
        return mask_secrets(value, secrets)
    if isinstance(value, dict):
        return {_mask(k, secrets): _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v, secrets) for v in value]
    return value


__all__ = ["VERSION", "dumps", "file_name", "result_document", "write_result_json"]
