"""Header checks (§4.9) against a stub message: match, absent, notMatch, Request-URI."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pytest_sipflow.sip.checks import (CheckFailure, HeaderCheck, HeaderCheckError,
                                       assert_headers, check_headers, compile_checks)

COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via"}


@dataclass
class Msg:
    """A MessageLike stub: headers as (name, value) pairs, compact names as the parser would."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    is_request: bool = True
    method: str | None = "INVITE"
    status: int | None = None
    reason: str = ""
    request_uri: str | None = "sip:200@127.0.0.1:5062"

    def header_values(self, name: str) -> list[str]:
        want = COMPACT.get(name.lower(), name.lower())
        return [v for n, v in self.headers if COMPACT.get(n.lower(), n.lower()) == want]


INVITE = Msg([("Via", "SIP/2.0/UDP 127.0.0.1:5060"), ("f", '"Alice" <sip:999@x>;tag=1'),
              ("P-Asserted-Identity", '"Alice" <sip:999@x>'),
              ("Diversion", "<sip:100@x>;reason=busy"), ("Diversion", "<sip:101@x>;reason=no-answer")])
RESPONSE = Msg([("To", "<sip:200@x>;tag=9")], is_request=False, method=None, status=486,
               reason="Busy Here", request_uri=None)


def failures(msg: Msg, spec: dict[str, object]) -> list[str]:
    return [str(f) for f in check_headers(msg, spec)]


def test_regex_found_passes_and_search_is_not_fullmatch() -> None:
    assert failures(INVITE, {"P-Asserted-Identity": r"<sip:999@"}) == []
    assert failures(INVITE, {"p-asserted-identity": r"sip:\d{3}@"}) == []


def test_regex_not_found_names_header_check_and_actual_value() -> None:
    assert failures(INVITE, {"P-Asserted-Identity": "<sip:1001@"}) == [
        "header 'P-Asserted-Identity': expected to match '<sip:1001@' — actual: \"Alice\" <sip:999@x>"]


def test_regex_on_missing_header_says_absent() -> None:
    (f,) = check_headers(INVITE, {"Record-Route": "kamailio"})
    assert (f.header, f.expected, f.actual) == ("Record-Route", "to match 'kamailio'", "absent")
    assert str(f) == "header 'Record-Route': expected to match 'kamailio' — actual: absent"


def test_compact_form_in_message_and_in_check() -> None:
    assert failures(INVITE, {"From": "Alice"}) == []
    assert failures(INVITE, {"f": "Alice"}) == []
    assert failures(INVITE, {"From": "Bob"})[0].startswith("header 'From': expected to match 'Bob'")


def test_repeated_header_passes_when_any_value_matches() -> None:
    assert failures(INVITE, {"Diversion": "no-answer"}) == []
    (f,) = check_headers(INVITE, {"Diversion": "unconditional"})
    assert f.actual == "(2 values) <sip:100@x>;reason=busy | <sip:101@x>;reason=no-answer"


def test_absent_passes_when_missing_fails_when_present_even_repeated() -> None:
    assert failures(INVITE, {"Record-Route": {"absent": True}}) == []
    assert failures(INVITE, {"P-Asserted-Identity": {"absent": True}}) == [
        "header 'P-Asserted-Identity': expected absent — actual: \"Alice\" <sip:999@x>"]
    (f,) = check_headers(INVITE, {"diversion": {"absent": True}})
    assert f.values == ("<sip:100@x>;reason=busy", "<sip:101@x>;reason=no-answer")


def test_absent_false_means_present() -> None:
    assert failures(INVITE, {"Via": {"absent": False}}) == []
    assert failures(INVITE, {"Route": {"absent": False}}) == [
        "header 'Route': expected present — actual: absent"]


def test_not_match_fails_when_any_value_matches_and_passes_when_missing() -> None:
    assert failures(INVITE, {"Diversion": {"notMatch": "reason=busy"}}) == [
        "header 'Diversion': expected not to match 'reason=busy' — actual: (2 values) "
        "<sip:100@x>;reason=busy | <sip:101@x>;reason=no-answer"]
    assert failures(INVITE, {"Diversion": {"notMatch": "deflection"}}) == []
    assert failures(INVITE, {"Privacy": {"notMatch": "id"}}) == []


def test_request_uri_checks_the_request_line() -> None:
    assert failures(INVITE, {"Request-URI": r"^sip:200@"}) == []
    assert failures(INVITE, {"request-uri": {"notMatch": "5062"}}) == [
        "header 'request-uri': expected not to match '5062' — actual: sip:200@127.0.0.1:5062"]
    assert failures(RESPONSE, {"Request-URI": "sip:"}) == [
        "header 'Request-URI': expected to match 'sip:' — actual: absent"]


def test_checks_on_a_response_and_order_of_failures() -> None:
    got = check_headers(RESPONSE, {"To": "tag=9", "Warning": "x", "Via": {"notMatch": "."},
                                   "Reason": "busy"})
    assert [f.header for f in got] == ["Warning", "Reason"]


def test_compiled_once_and_reused() -> None:
    checks = compile_checks({"From": "Alice", "Route": {"absent": True}})
    assert [c.kind for c in checks] == ["match", "absent"]
    assert checks[0].pattern is not None and checks[0].pattern.pattern == "Alice"
    assert check_headers(INVITE, checks) == []
    assert check_headers(Msg([("Route", "<sip:p>")]), checks) == [
        CheckFailure(checks[0], ()), CheckFailure(checks[1], ("<sip:p>",))]


@pytest.mark.parametrize("spec, words", [
    ("(unclosed", "invalid regular expression '(unclosed'"),
    ({"notMatch": "[a-"}, "invalid regular expression '[a-'"),
    ({"absent": "yes"}, "a check is a regex string"),
    ({"absent": True, "notMatch": "x"}, "a check is a regex string"),
    ({"match": "x"}, "a check is a regex string"),
    (42, "a check is a regex string"),
])
def test_bad_specs_are_refused_naming_the_header(spec: object, words: str) -> None:
    with pytest.raises(ValueError, match="'X-Test'") as info:
        HeaderCheck.parse("X-Test", spec)
    assert words in str(info.value)


def test_empty_header_name_refused() -> None:
    with pytest.raises(ValueError, match="empty header name"):
        compile_checks({" ": "x"})


def test_assert_headers_raises_one_line_per_failure() -> None:
    assert_headers(INVITE, {"From": "Alice"})
    with pytest.raises(HeaderCheckError) as info:
        assert_headers(INVITE, {"From": "Bob", "Route": "x"})
    assert str(info.value).splitlines() == [
        "header 'From': expected to match 'Bob' — actual: \"Alice\" <sip:999@x>;tag=1",
        "header 'Route': expected to match 'x' — actual: absent"]
    assert len(info.value.failures) == 2
