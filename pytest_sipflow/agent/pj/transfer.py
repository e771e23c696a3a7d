"""Transfers: blind (REFER) and attended (REFER with Replaces), NOTIFY, and child calls.

The call a transfer or a Replaces creates is made here as a child of its parent before
pjsua gives it an id; one pjsua never created within ``CHILD_GRACE_S`` is reported ended.
"""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from ..rules import OpError, refer_outcome, refer_to
from .calls import forget_call
from .objects import AgentCall
from .ops import callback, op
from .state import AgentState, call_param

#: A REFER/Replaces child that pjsua did not create within this time is reported ended.
CHILD_GRACE_S = 1.0


@op("transfer")
def transfer(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    call = st.get_call(args)
    st.require_confirmed(call)
    target = refer_to(st.verify_uri(args))
    prm = call_param(args.get("headers"))
    return st.defer(lambda: call.xfer(target, prm), req_id, "transfer", "refer", call.handle,
                    float(args.get("timeout", 10.0)), "response to the REFER")


@op("transfer_attended")
def transfer_attended(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    call = st.get_call(args)
    dest = st.get_call(args, "dest_call")
    if dest is call:
        raise OpError("call and dest_call are the same call")
    st.require_confirmed(call)
    st.require_confirmed(dest)
    prm = call_param(args.get("headers"))
    return st.defer(lambda: call.xferReplaces(dest, prm), req_id, "transfer_attended", "refer",
                    call.handle, float(args.get("timeout", 10.0)), "response to the REFER")


def make_child(st: AgentState, parent: AgentCall,
               call_id: int = pj.PJSUA_INVALID_ID) -> AgentCall:
    assert st.acc is not None
    child = AgentCall(st.fire, st.acc, st.calls.new_handle(), call_id)
    child.child_of = parent.handle
    st.calls.add(child.handle, child)
    st.media_clock(True)
    return child


def children_due(st: AgentState) -> list[float]:
    """When the grace of each child pjsua has not created yet runs out."""
    return [c.born + CHILD_GRACE_S for c in st.calls.live.values() if c.child_of]


def expire_children(st: AgentState, now: float) -> None:
    for call in list(st.calls.live.values()):
        if call.child_of is not None and call.getId() < 0 and now - call.born > CHILD_GRACE_S:
            forget_call(st, call, 500, f"call for transfer/replace on {call.child_of} "
                                       "was never created")


@callback("onCallTransferRequest")
def on_transfer_request(st: AgentState, call: AgentCall,
                        prm: "pj.OnCallTransferRequestParam") -> None:
    if st.acc is None or prm.statusCode // 100 != 2:
        return
    child = make_child(st, call)
    prm.newCall = child
    st.emit("transferred", call=call.handle, target=prm.dstUri, new_call=child.handle)


@callback("onCallTransferStatus")
def on_transfer_status(st: AgentState, call: AgentCall,
                       prm: "pj.OnCallTransferStatusParam") -> None:
    prm.cont = True
    code = int(prm.statusCode)
    final = bool(prm.finalNotify)
    out = refer_outcome(code, final, prm.reason)
    st.resolve(call.handle, "refer", out.ok, out.result, out.error)
    st.emit("notify", call=call.handle, code=code, reason=prm.reason, final=final)


@callback("onCallReplaceRequest")
def on_replace_request(st: AgentState, call: AgentCall,
                       prm: "pj.OnCallReplaceRequestParam") -> None:
    if st.acc is None or prm.statusCode >= 300:
        return
    prm.newCall = make_child(st, call)


@callback("onCallReplaced")
def on_replaced(st: AgentState, call: AgentCall, prm: "pj.OnCallReplacedParam") -> None:
    new_id = prm.newCallId
    child = next((c for c in st.calls.live.values()
                  if c.child_of == call.handle and c.getId() == new_id), None)
    if child is None:
        child = make_child(st, call, new_id)
        prm.newCall = child
    st.note_callid(child)
    st.emit("replaced", call=call.handle, new_call=child.handle)

