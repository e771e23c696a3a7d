"""What each node type does: a registry from command/event name to a handler.

A handler maps a node's data onto the call core (:mod:`pytest_sipflow.core.phone`) and
returns the line the action log shows; it fails by raising ``StepFailed``. Adding a node
type is adding one decorated function here.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core import media
from ..core import hearing
from ..core.account import Account
from ..core.expect import expect_nothing
from ..core.failures import StepFailed
from ..core.mailbox import Event, Interrupted
from ..core.phone import Phone
from ..format import schema
from ..format.graph import Step


@dataclass
class NodeContext:
    """What a handler may use: its step, its instance's phone and the run's services."""

    step: Step
    phone: Phone
    timeout: float  # seconds: the node's own timeout, else the run's default
    resolve: Callable[[str], str]  # targetUri -> SIP URI for this instance
    log: Callable[[str, str], None]  # (message, level) into the action log
    abort: threading.Event
    base: Path  # folder of the scenario file (relative file paths)
    account: Account | None  # real mode: the server this instance is a phone of
    #: URI or dn -> instance name (names the peer in media checks)
    names: Mapping[str, str] = field(default_factory=dict)
    record_dir: Path | None = None  # where recordings without a filePath go

    @property
    def key(self) -> str:
        return self.step.call_id


Handler = Callable[[NodeContext, Any], str]
#: Node model (``schema.STEP_MODELS``) -> its handler; every model has one (checked below).
HANDLERS: dict[type, Handler] = {}


def handles(model: type) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[model] = fn
        return fn
    return register


# -- commands --------------------------------------------------------------------------


@handles(schema.MakeCall)
def make_call(ctx: NodeContext, data: Any) -> str:
    uri = ctx.resolve(data.target_uri)
    ctx.log(f"calling {uri}", "info")
    handle = ctx.phone.dial(ctx.key, uri, data.headers, data.follow_redirects)
    status = ctx.phone.expect_final(handle, uri, data.expected_status_code, ctx.timeout,
                                    data.expect_headers)
    if data.expected_status_code is not None:
        return f"call to {uri} answered {status}, as expected"
    return f"call to {uri} answered"


@handles(schema.Answer)
def answer(ctx: NodeContext, data: Any) -> str:
    ctx.phone.answer(ctx.key, data.status_code, ctx.timeout, data.headers)
    return f"answered with {data.status_code}"


@handles(schema.Response)
def response(ctx: NodeContext, data: Any) -> str:
    ctx.phone.respond(ctx.key, data.status_code, data.reason, data.headers)
    return f"responded {data.status_code}{' ' + data.reason if data.reason else ''}"


@handles(schema.Release)
def release(ctx: NodeContext, data: Any) -> str:
    if not ctx.phone.release(ctx.key, data.status_code, ctx.timeout, data.headers):
        ctx.log(f"call {ctx.key!r} had already ended", "warning")
        return "nothing to release"
    return f"call {ctx.key!r} released"


@handles(schema.Hold)
def hold(ctx: NodeContext, data: Any) -> str:
    ctx.phone.hold(ctx.key, ctx.timeout, data.headers)
    return f"call {ctx.key!r} put on hold"


@handles(schema.Retrieve)
def retrieve(ctx: NodeContext, data: Any) -> str:
    ctx.phone.retrieve(ctx.key, ctx.timeout, data.headers)
    return f"call {ctx.key!r} retrieved"


@handles(schema.BlindTransfer)
def blind_transfer(ctx: NodeContext, data: Any) -> str:
    if data.target_uri:
        target = ctx.resolve(data.target_uri)
    elif data.target_host and (ctx.account is not None or not _known(ctx, data.target_user or "")):
        target = f"sip:{data.target_user}@{data.target_host}"
    else:  # local mode: the editor's targetUser (+ PBX targetHost) is a dn of this scenario
        target = ctx.resolve(data.target_user or "")
    ctx.phone.blind_transfer(ctx.key, target, ctx.timeout, data.headers)
    return f"call {ctx.key!r} transferred to {target} (REFER accepted)"


def _known(ctx: NodeContext, name: str) -> bool:
    try:
        ctx.resolve(name)
    except StepFailed:
        return False
    return True


@handles(schema.MuteTransfer)
def attended_transfer(ctx: NodeContext, data: Any) -> str:
    ev = ctx.phone.attended_transfer(data.primary_call_id, data.consult_call_id, ctx.timeout,
                                     data.headers)
    return (f"calls {data.primary_call_id!r} and {data.consult_call_id!r} joined "
            f"(NOTIFY {ev.raw.get('code')}); both legs released")


@handles(schema.SendDTMF)
def send_dtmf(ctx: NodeContext, data: Any) -> str:
    if data.method == "inband":
        hearing.send_inband(ctx.phone, ctx.key, data.digits, data.interval_ms, ctx.abort)
        return f"sent DTMF {data.digits!r} in-band (tones in the audio)"
    ctx.phone.send_dtmf(ctx.key, data.digits, data.method, data.interval_ms, data.headers)
    return f"sent DTMF {data.digits!r} by {data.method}"


@handles(schema.PlayAudio)
def play_audio(ctx: NodeContext, data: Any) -> str:
    path = (ctx.base / data.file_path).resolve()
    ctx.phone.play(ctx.key, path, ctx.timeout)
    return f"played {path.name}"


@handles(schema.RecordAudio)
def record_audio(ctx: NodeContext, data: Any) -> str:
    if data.action == "start":
        path = (ctx.base / data.file_path).resolve() if data.file_path else \
            hearing.default_path(ctx.record_dir, ctx.phone, ctx.key, ctx.step.id)
        rec = hearing.start(ctx.phone, ctx.key, path, ctx.step.id)
        return f"recording what {ctx.step.instance} receives to {rec.path}"
    rec = hearing.stop(ctx.phone, ctx.key)
    verdict = hearing.check(rec, data.expect_tone, data.expect_silence)
    return f"recording {rec.path} stopped" + (f"; {verdict}" if verdict else "")


@handles(schema.Register)
def register(ctx: NodeContext, data: Any) -> str:
    _real_mode(ctx, "Register")
    reply = ctx.phone.register(data.expected_status_code, data.headers, ctx.timeout,
                               data.expect_headers)
    return f"REGISTER answered {reply.get('code')} {reply.get('reason') or ''}".rstrip()


@handles(schema.Unregister)
def unregister(ctx: NodeContext, data: Any) -> str:
    _real_mode(ctx, "Unregister")
    reply = ctx.phone.unregister(ctx.timeout)
    return f"un-REGISTER answered {reply.get('code')} {reply.get('reason') or ''}".rstrip()


def _real_mode(ctx: NodeContext, what: str) -> None:
    if ctx.account is None:
        raise StepFailed(f"{what} needs a server: instance {ctx.step.instance!r} has no pbxHost "
                         "and no --sipflow-registrar is set", expected="a registrar",
                         actual="local mode")


@handles(schema.SendMessage)
def send_message(ctx: NodeContext, data: Any) -> str:
    uri = ctx.resolve(data.target_uri)
    reply = ctx.phone.send_message(uri, data.body, data.content_type, data.headers, ctx.timeout)
    return f"MESSAGE to {uri} answered {reply.get('code')} {reply.get('reason') or ''}".rstrip()


# -- events ----------------------------------------------------------------------------


@handles(schema.Timeout)
def timeout(ctx: NodeContext, data: Any) -> str:
    if ctx.abort.wait(ctx.timeout):
        raise Interrupted()
    return ""


@handles(schema.Incoming)
def incoming(ctx: NodeContext, data: Any) -> str:
    ev = ctx.phone.wait_incoming(ctx.key, ctx.timeout)
    ctx.phone.check_event(ev, data.agent_event, data.expect_headers)
    return f"incoming call from {ev.raw.get('from', '?')}"


@handles(schema.Ringing)
def ringing(ctx: NodeContext, data: Any) -> str:
    ev = _call_event(ctx, data)
    return f"ringing ({ev.raw.get('code', 180)})"


@handles(schema.Disconnected)
def disconnected(ctx: NodeContext, data: Any) -> str:
    ev = _call_event(ctx, data)
    ended = f"disconnected ({ev.raw.get('code')} {ev.raw.get('reason', '')})".strip()
    cancelled = bool(ev.raw.get("cancelled"))
    if data.cancelled is not None and cancelled != data.cancelled:
        how = "the peer's CANCEL" if cancelled else f"{ended}, no CANCEL received"
        raise StepFailed(f"call {ctx.key!r} ended by {how}, but the node expects "
                         f"'cancelled': {str(data.cancelled).lower()}",
                         expected="cancelled by the peer" if data.cancelled else "not cancelled",
                         actual="cancelled by the peer" if cancelled else ended)
    done = ended + (", cancelled by the peer" if cancelled else "")
    if data.expect_media is None:
        return done
    stats = media.final(ctx.phone, ev)
    _check_media(ctx, data, stats, str(ev.call), "the call's final statistics")
    return f"{done}; media as expected ({media.describe(stats)})"


@handles(schema.DTMFReceived)
def dtmf_received(ctx: NodeContext, data: Any) -> str:
    if data.method == "inband":
        own = hearing.default_path(ctx.record_dir, ctx.phone, ctx.key, ctx.step.id)
        digits = hearing.wait_inband(ctx.phone, ctx.key, data.expected, ctx.timeout, ctx.abort,
                                     own, ctx.step.id)
        return f"heard in-band DTMF {digits!r}"
    digits = ctx.phone.wait_dtmf(ctx.key, data.expected, ctx.timeout, data.expect_headers)
    return f"received DTMF {digits!r}"


@handles(schema.Held)
def held(ctx: NodeContext, data: Any) -> str:
    _call_event(ctx, data)
    return f"call {ctx.key!r} held by the peer"


@handles(schema.Retrieved)
def retrieved(ctx: NodeContext, data: Any) -> str:
    _call_event(ctx, data)
    return f"call {ctx.key!r} retrieved by the peer"


@handles(schema.Transferred)
def transferred(ctx: NodeContext, data: Any) -> str:
    ev = _call_event(ctx, data)
    return f"transferred to {ev.raw.get('target', '?')}; following the REFER"


@handles(schema.Message)
def message(ctx: NodeContext, data: Any) -> str:
    ev = ctx.phone.wait_message(data.expected_body, ctx.timeout, data.expect_headers)
    return f"MESSAGE from {ev.raw.get('from', '?')}: {str(ev.raw.get('body', ''))[:60]!r}"


@handles(schema.Notify)
def notify(ctx: NodeContext, data: Any) -> str:
    ev = ctx.phone.wait_notify(ctx.key, data.status_code, False, ctx.timeout)
    ctx.phone.check_event(ev, data.agent_event, data.expect_headers)
    return f"NOTIFY {ev.raw.get('code')} {ev.raw.get('reason') or ''}".strip()


@handles(schema.Connected)
def connected(ctx: NodeContext, data: Any) -> str:
    ev = ctx.phone.wait_connected(ctx.key, data.expected_codec, ctx.timeout)
    ctx.phone.check_event(ev, data.agent_event, data.expect_headers)
    codec = ev.raw.get("codec")
    if data.expect_media is not None:
        handle = str(ev.call)
        _check_media(ctx, data, media.sample(ctx.phone, handle), handle, "connect")
    return f"call {ctx.key!r} connected" + (f" ({codec})" if codec else "")


@handles(schema.Media)
def media_sample(ctx: NodeContext, data: Any) -> str:
    """The live call's RTP over the node's timeout: a sample at the start and at the end."""
    handle = ctx.phone.handle(ctx.key)
    before = media.sample(ctx.phone, handle)
    if ctx.abort.wait(ctx.timeout):
        raise Interrupted()
    stats = media.window(before, media.sample(ctx.phone, ctx.phone.handle(ctx.key)))
    _check_media(ctx, data, stats, handle, f"{ctx.timeout * 1000:g} ms of the live call")
    return f"media as expected: {media.describe(stats)}"


def _check_media(ctx: NodeContext, data: Any, stats: Any, handle: str, where: str) -> None:
    peer = media.peer_name(ctx.phone, handle, ctx.names)
    media.check(data.expect_media, stats, ctx.step.instance, peer,
                f"callId {ctx.key!r} ({where})")


def _call_event(ctx: NodeContext, data: Any) -> Event:
    """The node's event on its call, with its ``expectHeaders`` checked."""
    ev = ctx.phone.wait_event(ctx.key, data.agent_event, data.canonical, ctx.timeout)
    ctx.phone.check_event(ev, data.agent_event, data.expect_headers)
    return ev


# -- absent: true ----------------------------------------------------------------------

Match = Callable[[Event], bool]

#: What would complete an event node other than its agent event on its own call.
_COMPLETES: dict[type, Callable[[NodeContext, Any], Match]] = {
    schema.Incoming: lambda ctx, data: lambda e: e.type == "incoming" and e.key is None,
    schema.DTMFReceived: lambda ctx, data: lambda e: (
        e.key == ctx.key and e.type == "dtmf"
        and (not data.expected or str(e.raw.get("digit")) in data.expected)),
    schema.Notify: lambda ctx, data: lambda e: (
        e.key == ctx.key and e.type == "notify"
        and (bool(e.raw.get("final")) or e.raw.get("reason") != "Accepted")
        and (data.status_code is None or e.raw.get("code") == data.status_code)),
    schema.Connected: lambda ctx, data: lambda e: (
        e.type == "confirmed" and e.call is not None
        and e.call == ctx.phone.box.handle(ctx.key)),
    schema.Message: lambda ctx, data: lambda e: (
        e.type == "message" and (data.expected_body is None
                                 or re.search(data.expected_body, str(e.raw.get("body") or ""))
                                 is not None)),
}


def completes(ctx: NodeContext, data: Any) -> Match:
    """The test an event must pass to complete the node (``absent: true`` waits for none)."""
    special = _COMPLETES.get(type(data))
    if special is not None:
        return special(ctx, data)
    return lambda e: e.key == ctx.key and e.type == data.agent_event


def run_absent(ctx: NodeContext, data: Any) -> str:
    """``absent: true``: the node completes when nothing it would wait for arrives in time."""
    expect_nothing(ctx.phone.box, completes(ctx, data), ctx.timeout, data.canonical)
    return f"no {data.canonical} within {ctx.timeout * 1000:g} ms, as required"


def unhandled() -> list[str]:
    """Node names without a handler: empty, or the engine refuses to load (below)."""
    return [m.canonical for m in schema.STEP_MODELS if m not in HANDLERS]


if unhandled():
    raise ImportError(f"pytest_sipflow.engine.nodes: no handler for {', '.join(unhandled())}")
