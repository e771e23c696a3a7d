"""The opt-in ``kamailio_server`` fixture, used as a user would: a conftest line, real phones."""

from __future__ import annotations

import pytest

from pytest_sipflow.testing import available


def test_kamailio_server_fixture_registers_phones_over_tls(
        sipflow_pytester: pytest.Pytester) -> None:
    missing = available()
    if missing:
        pytest.skip(missing)
    sipflow_pytester.makeconftest('pytest_plugins = ["pytest_sipflow.testing.fixtures"]')
    sipflow_pytester.makepyfile("""
        import pytest

        @pytest.fixture(scope="session")
        def kamailio_accounts():
            return {"2001": "pw-a-2001", "2002": "pw-b-2002"}

        def test_call_through_the_server(kamailio_server, sip_instance):
            reg = kamailio_server.registrar("tls")
            a = sip_instance("a", "2001", registrar=reg, transport="tls", password="pw-a-2001")
            b = sip_instance("b", "2002", registrar=reg, transport="tls", password="pw-b-2002")
            out = a.call("2002")
            inc = b.wait_incoming()
            inc.answer()
            out.wait_answered()
            out.release()
            inc.wait_disconnected()
            assert [r.proto for r in kamailio_server.requests("INVITE")][-1] == "tls"

        def test_a_wrong_password_is_refused(kamailio_server, sip_instance):
            with pytest.raises(AssertionError, match="401|403"):
                sip_instance("c", "2001", registrar=kamailio_server.registrar("udp"),
                             password="wrong")
        """)
    result = sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
