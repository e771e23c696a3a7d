"""``--sipflow-pcap``'s RTP: the wire capture around one item's run (``reporting.capture``).

Started only when pcap files are written; without the privilege to capture, one warning
per run says why the pcap files hold SIP only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .keys import session_key

if TYPE_CHECKING:
    from ..reporting.capture import WireCapture


def start_capture(item: Any) -> "WireCapture | None":
    """With ``--sipflow-pcap``: capture the RTP port range of the run from the wire."""
    session = item.config.stash[session_key]
    if not session.settings.report.pcap_dir:
        return None
    from ..reporting.capture import WireCapture

    plan = session.settings.ports
    capture = WireCapture(range(plan.rtp_first, plan.rtp_first + plan.rtp_block)).start()
    if capture.problem and not session.capture_warned:
        session.capture_warned = True  # once per run: every item would say the same
        item.warn(pytest.PytestWarning(f"sipflow: {capture.problem}; the pcap files hold SIP "
                                       "only"))
    return capture


def keep_capture(item: Any, capture: "WireCapture | None") -> None:
    """Stop the capture; keep the frames of this item's agents' RTP ports."""
    if capture is None:
        return
    capture.stop()
    if item.result is None:
        return
    from ..agent.ports import RTP_PORTS_PER_AGENT
    from ..sip.address import split_address

    plan = item.config.stash[session_key].settings.ports
    ports: set[int] = set()
    for inst in item.result.instances.values():
        sip_port = split_address(str(inst.get("address", "")))[1]
        if sip_port:
            first = plan.rtp_for(sip_port)
            ports.update(range(first, first + RTP_PORTS_PER_AGENT))
    item.rtp_frames = capture.of_ports(ports)
