"""Configuring an agent for an instance and resetting it afterwards, once for both front ends.

The engine configures all its agents at once (send all, then wait), ``UserAgent`` one: so
each step is a send and a wait. Failures name the instance and, in real mode, the server.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..sip import DEFAULT_CODECS
from .account import Account, registration_failure, tls_args, unregister_trouble
from .failures import AgentDied, StepFailed
from .phone import Phone, ReplyLike
from .settings import EngineSettings


def send_configure(phone: Phone, settings: EngineSettings, account: Account | None, *,
                   dn: str, display: str, codecs: Sequence[str] = DEFAULT_CODECS,
                   auto_ringing: bool = True, media_stats: bool = False,
                   srtp: str = "disabled", srtp_keying: str = "sdes") -> ReplyLike:
    """Ask the agent to become this instance (and, with an account, to register).
    ``media_stats``: watch each call's RTP (only for scenarios that check media)."""
    args: dict[str, Any] = dict(dn=dn, display=display, codecs=list(codecs),
                                auto_ringing=auto_ringing)
    if media_stats:
        args["media_stats"] = True
    if settings.keep_trace:
        args["trace"] = "keep"
    phone.keep_trace = settings.keep_trace
    if srtp != "disabled":
        args.update(srtp=srtp, srtp_keying=srtp_keying)
    phone.srtp = srtp
    if account is not None:
        args.update(account.agent_args(), tls=tls_args(settings.tls, account),
                    timeout=settings.register_timeout_s)
        phone.configured_args = None
    else:  # local mode: an agent whose reset kept the same account needs no configure
        phone.configured_args = args
        if getattr(phone.agent, "configured", None) == args:
            return Done({})
    return phone.send("configure", **args)


class Done:
    """A reply that is already there (a request that did not need sending)."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def wait(self, timeout: float = 5.0) -> dict[str, Any]:
        return self.value


def wait_configured(phone: Phone, reply: ReplyLike, settings: EngineSettings,
                    account: Account | None) -> dict[str, Any]:
    """The ``configure`` reply; a refusal as a StepFailed that says what to fix."""
    try:
        return phone.wait_reply("configure", reply,
                                phone.request_timeout + settings.register_timeout_s)
    except StepFailed as exc:
        if account is not None:
            raise registration_failure(phone.name, account, exc.reason, exc.timed_out) from None
        text = exc.reason.removeprefix("configure failed: ").removeprefix("configure: ")
        raise StepFailed(f"could not configure the agent of instance {phone.name!r}: {text}",
                         detail=phone.agent.stderr_tail()) from None


def send_reset(phone: Phone, settings: EngineSettings, keep_account: bool = False,
               ) -> ReplyLike | None:
    """Hang up everything and un-REGISTER; None when the agent is gone already.
    ``keep_account``: a local-mode account stays, for a next user configured the same."""
    extra = {"keep_account": True} if keep_account and phone.configured_args else {}
    try:
        return phone.send("reset", unregister_timeout=settings.register_timeout_s, **extra)
    except AgentDied:
        return None


def wait_reset(phone: Phone, reply: ReplyLike | None,
               settings: EngineSettings) -> tuple[bool, str | None]:
    """(the agent is clean for its next user, what went wrong with its un-REGISTER)."""
    if reply is None:
        return False, None
    try:
        done = phone.wait_reply("reset", reply, phone.request_timeout + settings.register_timeout_s)
    except (StepFailed, AgentDied):
        return False, None
    if done.get("kept_account"):
        phone.agent.configured = phone.configured_args  # type: ignore[attr-defined]
    return True, unregister_trouble(done)
