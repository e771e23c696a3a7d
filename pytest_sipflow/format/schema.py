"""pydantic models of the ``*.sipflow.json`` format (docs/reference.md is the user's view).

Strict inside a node's ``data`` (a typo such as ``expectedDigts`` is refused, the editor's
own keys in :data:`EDITOR_KEYS` are not), lenient where the editor draws. Aliases become
canonical names (``AttendedTransfer`` -> ``MuteTransfer``), so nothing else sees them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (AliasChoices, Field, SecretStr, StrictBool, ValidationInfo, field_validator,
                      model_validator)
from pydantic.alias_generators import to_camel

from ..sip import DEFAULT_CODECS, TRANSPORT_PORTS
from .document import Document, EdgeData, RawEdge, RawNode  # noqa: F401 (the format's models, one import)
from .fields import (ExpectHeaders, FinalCode, Headers, KeyProblem, Millis, StatusCode, _dtmf,
                     _Model, _regex, _text_number, any_case)
from .media_keys import SRTP_KEYINGS, SRTP_USES, ExpectMediaKey, lower_choice, packet_keys
from .hearing import (ExpectTone, InbandMethod, SilenceKey, check_inband_send, check_inband_wait,
                      check_record_audio)

#: Keys the SIPFLOW editor itself writes into a node's ``data`` (display, its own server
#: references, legacy fields): accepted on every node and ignored. Taken from the editor's
#: node types (SipInstanceNodeData, CommandNodeData, EventNodeData, BranchEdgeData).
EDITOR_KEYS = frozenset({
    "label", "color", "condition", "branchType", "pbxInstanceId", "serverId",
    "transferTarget", "description", "icon",
})

#: ``sourceHandle`` / ``data.branchType`` values that choose a branch (spec §3).
BRANCHES = ("success", "failure")
#: Handle ids the editor writes that carry no branch: its node shell's one output handle.
NEUTRAL_HANDLES = ("source",)

# --- sipInstance ---------------------------------------------------------------------


class SipInstanceData(_Model):
    dn: str = ""
    label: str = ""
    register_: bool = Field(True, alias="register")
    pbx_host: str = ""
    pbx_port: str | int = ""
    pbx_transport: str = Field("UDP", json_schema_extra={"pattern": any_case(TRANSPORT_PORTS)})
    register_interval_seconds: int = Field(300, ge=0)
    codecs: list[str] = Field(default_factory=lambda: list(DEFAULT_CODECS))
    username: str | None = Field(None, validation_alias=AliasChoices("username", "authUser"))
    password: SecretStr | None = None  # shown as '**********' in every repr
    realm: str | None = None
    domain: str = ""
    outbound_proxy: str = ""
    auto_ringing: bool = True
    # media (docs/media.md)
    srtp: Literal["disabled", "optional", "mandatory"] = "disabled"
    srtp_keying: Literal["sdes", "dtls"] = "sdes"
    #: This instance's own TLS client certificate and key (PEM), for mutual TLS; they win
    #: over --sipflow-tls-cert/--sipflow-tls-key.
    tls_cert: str = ""
    tls_key: str = ""
    #: Register and be reached with sips: URIs (registrar, AOR, Contact): a secure dialog
    #: (a call to a sips: target) needs the callee's Contact to be sips: too. TLS only.
    sips: StrictBool = False

    @model_validator(mode="after")
    def _cert_and_key(self) -> "SipInstanceData":
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "tlsKey" if self.tls_cert else "tlsCert"
            raise KeyProblem(f"a client certificate needs both tlsCert and tlsKey: {missing} "
                             "is missing", missing)
        if self.sips and self.pbx_transport != "TLS":
            raise KeyProblem(f"sips: true needs \"pbxTransport\": \"TLS\" (sips: URIs are "
                             f"reached over TLS only), not {self.pbx_transport!r}", "sips")
        return self

    @field_validator("srtp", mode="before")
    @classmethod
    def _srtp(cls, value: Any) -> Any:
        return lower_choice(value, SRTP_USES, "srtp")

    @field_validator("srtp_keying", mode="before")
    @classmethod
    def _srtp_keying(cls, value: Any) -> Any:
        return lower_choice(value, SRTP_KEYINGS, "srtpKeying")

    @field_validator("dn", "pbx_port", "username", "password", mode="before",
                     json_schema_input_type=str | int | None)
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        return _text_number(value)

    @field_validator("pbx_transport", mode="before")
    @classmethod
    def _transport(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.upper() not in TRANSPORT_PORTS and value != "":
            raise ValueError(f"unknown transport; allowed: {', '.join(TRANSPORT_PORTS)} "
                             "(any case)")
        return value.upper() or "UDP"


# --- command / event -------------------------------------------------------------------


class _Step(_Model):
    """Keys common to commands and events."""

    sip_instance_id: str | None = None
    call_id: str = "call-1"
    timeout: Millis | None = None  # None: the run's default event timeout

    @field_validator("sip_instance_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("call_id", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return "call-1" if value in ("", None) else value


class CommandData(_Step):
    command: str
    canonical: ClassVar[str] = ""


class _Sends(CommandData):
    """A command that sends a SIP message: ``headers`` are added to that message."""

    headers: Headers = Field(default_factory=dict)


class MakeCall(_Sends):
    canonical: ClassVar[str] = "MakeCall"
    target_uri: str = Field(min_length=1)
    expected_status_code: FinalCode | None = None
    expect_headers: ExpectHeaders = ()
    #: A 3xx answer: call its first Contact (True) or end the call with the 3xx (False).
    follow_redirects: StrictBool = True


class Answer(_Sends):
    canonical: ClassVar[str] = "Answer"
    status_code: int = Field(200, ge=200, le=299)


class Response(_Sends):
    canonical: ClassVar[str] = "Response"
    status_code: StatusCode
    reason: str | None = None


class Release(_Sends):
    canonical: ClassVar[str] = "Release"
    status_code: int | None = Field(None, ge=300, le=699)


class Hold(_Sends):
    canonical: ClassVar[str] = "Hold"


class Retrieve(_Sends):
    canonical: ClassVar[str] = "Retrieve"


class BlindTransfer(_Sends):
    canonical: ClassVar[str] = "BlindTransfer"
    target_uri: str | None = None
    target_user: str | None = None
    target_host: str | None = None

    @model_validator(mode="after")
    def _has_target(self) -> "BlindTransfer":
        if not self.target_uri and not self.target_user:
            raise ValueError("needs targetUri, or targetUser (+ targetHost)")
        return self


class MuteTransfer(_Sends):
    canonical: ClassVar[str] = "MuteTransfer"
    primary_call_id: str = Field(min_length=1)
    consult_call_id: str = Field(min_length=1)


class SendDTMF(_Sends):
    canonical: ClassVar[str] = "SendDTMF"
    digits: str = Field(min_length=1)
    interval_ms: Millis = 100
    method: Literal["rfc2833", "info", "inband"] = "rfc2833"

    @field_validator("digits", mode="before", json_schema_input_type=str | int)
    @classmethod
    def _digits(cls, value: Any) -> Any:
        return _dtmf(value)

    @field_validator("method", mode="before", json_schema_input_type=Annotated[
        str, Field(pattern=any_case(("rfc2833", "info"), empty=False))])
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _headers_need_info(self) -> "SendDTMF":
        if self.headers and self.method != "info":
            raise KeyProblem("'headers' on SendDTMF need method 'info': RFC 2833 digits "
                             "travel in RTP, no SIP message carries them", "headers")
        return self

    @model_validator(mode="after")
    def _inband_gap(self) -> "SendDTMF":
        check_inband_send(self.method, self.interval_ms)
        return self


class RecordAudio(CommandData):
    """Record what the call receives (``start``); ``stop`` closes the WAV and judges it."""

    canonical: ClassVar[str] = "RecordAudio"
    action: Literal["start", "stop"] = "start"
    file_path: str | None = Field(None, min_length=1)
    expect_tone: ExpectTone | None = None
    expect_silence: SilenceKey = None

    @model_validator(mode="after")
    def _coherent(self) -> "RecordAudio":
        check_record_audio(self.action, self.file_path, self.expect_tone, self.expect_silence)
        return self


class PlayAudio(CommandData):
    canonical: ClassVar[str] = "PlayAudio"
    file_path: str = Field(min_length=1)


class Register(_Sends):
    canonical: ClassVar[str] = "Register"
    expected_status_code: FinalCode | None = None
    expect_headers: ExpectHeaders = ()


class Unregister(CommandData):
    canonical: ClassVar[str] = "Unregister"


class SendMessage(_Sends):
    canonical: ClassVar[str] = "SendMessage"
    target_uri: str = Field(min_length=1)
    body: str = ""
    content_type: str = Field("text/plain", min_length=1)


class EventData(_Step):
    event: str
    absent: bool = False
    expect_headers: ExpectHeaders = ()
    canonical: ClassVar[str] = ""
    #: The agent event (docs/agent-protocol.md) that completes the node; None: none does.
    agent_event: ClassVar[str | None] = None

    @model_validator(mode="after")
    def _absent_or_headers(self) -> "EventData":
        if self.absent and self.expect_headers:
            raise KeyProblem("'expectHeaders' checks the message that completed the node; "
                             "with 'absent: true' no message may complete it: keep one",
                             "expectHeaders")
        return self


class Incoming(EventData):
    canonical: ClassVar[str] = "INCOMING"
    agent_event: ClassVar[str | None] = "incoming"
    number: str | None = None

    @field_validator("number", mode="before", json_schema_input_type=str | int | None)
    @classmethod
    def _number(cls, value: Any) -> Any:
        return None if value == "" else _text_number(value)


class Ringing(EventData):
    canonical: ClassVar[str] = "RINGING"
    agent_event: ClassVar[str | None] = "ringing"


class Disconnected(EventData):
    canonical: ClassVar[str] = "DISCONNECTED"
    agent_event: ClassVar[str | None] = "disconnected"
    expect_media: ExpectMediaKey = None  # on the call's final statistics
    #: True: the call must have ended by the peer's CANCEL before it was answered (the
    #: losing branch of a fork); False: it must not have. None: not checked.
    cancelled: StrictBool | None = None


class Timeout(EventData):
    canonical: ClassVar[str] = "TIMEOUT"

    @field_validator("absent", "expect_headers")
    @classmethod
    def _no_message(cls, value: Any, info: ValidationInfo) -> Any:
        if value:
            key = to_camel(info.field_name or "")
            raise KeyProblem(f"{key!r} means nothing on TIMEOUT (a plain delay: no SIP "
                             "message completes it)", key)
        return value


class DTMFReceived(EventData):
    canonical: ClassVar[str] = "DTMFReceived"
    agent_event: ClassVar[str | None] = "dtmf"
    expected_digit: str | None = None
    expected_digits: str | None = None
    method: InbandMethod = None

    @model_validator(mode="after")
    def _inband(self) -> "DTMFReceived":
        check_inband_wait(self.method, self.absent, self.expect_headers)
        return self

    @field_validator("expected_digit", "expected_digits", mode="before",
                     json_schema_input_type=str | int | None)
    @classmethod
    def _digits(cls, value: Any) -> Any:
        return None if value == "" else _dtmf(value)

    @field_validator("expected_digit")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("expectedDigit is one digit; use expectedDigits for a sequence")
        return value

    @property
    def expected(self) -> str | None:
        return self.expected_digits or self.expected_digit


class Held(EventData):
    canonical: ClassVar[str] = "HELD"
    agent_event: ClassVar[str | None] = "held"


class Retrieved(EventData):
    canonical: ClassVar[str] = "RETRIEVED"
    agent_event: ClassVar[str | None] = "retrieved"


class Transferred(EventData):
    canonical: ClassVar[str] = "TRANSFERRED"
    agent_event: ClassVar[str | None] = "transferred"


class Notify(EventData):
    canonical: ClassVar[str] = "NOTIFY"
    agent_event: ClassVar[str | None] = "notify"
    status_code: StatusCode | None = None


class Connected(EventData):
    canonical: ClassVar[str] = "CONNECTED"
    agent_event: ClassVar[str | None] = "confirmed"
    expected_codec: str | None = None
    expect_media: ExpectMediaKey = None  # codec and srtp only: no packet has flowed yet

    @model_validator(mode="after")
    def _no_packet_keys(self) -> "Connected":
        keys = packet_keys(self.expect_media)
        if keys:
            raise KeyProblem(f"expectMedia on CONNECTED checks codec and srtp only (the call "
                             f"has just started, no packet has flowed): move {keys} to a MEDIA "
                             "node (the live call after its timeout) or to DISCONNECTED",
                             f"expectMedia.{keys[0]}")
        return self


class Media(EventData):
    """Samples the live call's RTP for ``timeout`` ms, then checks ``expectMedia``."""

    canonical: ClassVar[str] = "MEDIA"
    expect_media: ExpectMediaKey = Field(None, validate_default=True)

    @field_validator("absent", "expect_headers")
    @classmethod
    def _no_message(cls, value: Any, info: ValidationInfo) -> Any:
        if value:
            key = to_camel(info.field_name or "")
            raise KeyProblem(f"{key!r} means nothing on MEDIA (it samples RTP: no SIP "
                             "message completes it)", key)
        return value

    @field_validator("expect_media")
    @classmethod
    def _required(cls, value: Any) -> Any:
        if value is None:
            raise KeyProblem("MEDIA needs expectMedia, e.g. {\"received\": true}",
                             "expectMedia")
        return value


class Message(EventData):
    canonical: ClassVar[str] = "MESSAGE"
    agent_event: ClassVar[str | None] = "message"
    expected_body: str | None = None

    @field_validator("expected_body")
    @classmethod
    def _body_regex(cls, value: str | None) -> str | None:
        return None if value is None else _regex(value)


COMMANDS: dict[str, type[CommandData]] = {
    m.canonical: m
    for m in (MakeCall, Answer, Response, Release, Hold, Retrieve, BlindTransfer,
              MuteTransfer, SendDTMF, PlayAudio, Register, Unregister, SendMessage,
              RecordAudio)
}
COMMANDS["AttendedTransfer"] = MuteTransfer

EVENTS: dict[str, type[EventData]] = {
    m.canonical: m
    for m in (Incoming, Ringing, Disconnected, Timeout, DTMFReceived, Held, Retrieved,
              Transferred, Notify, Connected, Message, Media)
}
EVENTS.update(HoldEvent=Held, RetrieveEvent=Retrieved, TransferEvent=Transferred)

NODE_TYPES = ("sipInstance", "command", "event")
#: Every command and event model once: the engine registers one handler for each.
STEP_MODELS: tuple[type[CommandData] | type[EventData], ...] = (
    *dict.fromkeys(COMMANDS.values()), *dict.fromkeys(EVENTS.values()))


NodeData = SipInstanceData | CommandData | EventData
