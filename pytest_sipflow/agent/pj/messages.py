"""SIP MESSAGE: ``send_message`` (reply deferred until the final response) and received ones.

MESSAGEs go out through one pjsua Buddy per target URI, kept until the account is dropped.
"""

from __future__ import annotations

import gc
from typing import Any

import pjsua2 as pj

from ...sip.message import parse, readable
from ..rules import message_outcome
from .ops import callback, op
from .state import AgentState, sip_headers


@op("send_message")
def send_message(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    acc = st.require_account()
    target = st.verify_uri(args)
    body = str(args.get("body") or "")
    ctype = str(args.get("content_type") or "text/plain")
    buddy = st.buddies.get(target)
    if buddy is None:
        bcfg = pj.BuddyConfig()
        bcfg.uri = target
        bcfg.subscribe = False
        buddy = pj.Buddy()
        buddy.create(acc, bcfg)
        st.buddies[target] = buddy
    prm = pj.SendInstantMessageParam()
    prm.content = body
    prm.contentType = ctype
    for hdr in sip_headers(args.get("headers")):
        prm.txOption.headers.append(hdr)
    n = st.next_message
    st.next_message += 1
    key = f"message:{target}"
    return st.defer(lambda: buddy.sendInstantMessage(prm), req_id, "send_message", "message",
                    key, float(args.get("timeout") or 10.0), "final response to the MESSAGE",
                    n=n)


@callback("onInstantMessageStatus")
def on_message_status(st: AgentState, prm: "pj.OnInstantMessageStatusParam") -> None:
    to = readable(prm.toUri).strip().lstrip("<").rstrip(">")
    out = message_outcome(int(prm.code), readable(prm.reason))
    taken = st.pending.take(f"message:{to}", "message")
    if not taken:  # pjsua may spell the URI differently: oldest MESSAGE first
        taken = sorted(st.pending.take(None, "message"), key=lambda p: p.data["n"])[:1]
    for pending in taken:
        st.reply(pending.req_id, out.ok, out.result, out.error)


@callback("onInstantMessage")
def on_message(st: AgentState, prm: "pj.OnInstantMessageParam") -> None:
    try:
        msg = parse(prm.rdata.wholeMsg)
        headers, cid = msg.headers.as_dict(), msg.call_id
    except Exception:
        headers, cid = {}, None
    st.emit("message", **{"from": prm.fromUri, "to": prm.toUri}, body=prm.msgBody,
            content_type=prm.contentType, headers=headers, sip_call_id=cid)


def drop_buddies(st: AgentState) -> None:
    """Before the account goes: its Buddies, and the replies still waiting on them."""
    # Buddies die first, on this thread: Account.shutdown() would delete their C++
    # objects under Python's feet.
    st.buddies.clear()
    gc.collect()
    for pending in st.pending.take(None, "message"):
        st.reply(pending.req_id, False, error="send_message: cancelled by reset")
