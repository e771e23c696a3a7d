"""What people look at after a run: SIP trace, text/SVG ladder, pcap, JSON results.

Pure functions over ``SipRecord`` (one per SIP message an agent sent or received): no
pytest, no pjsua2, no sockets. Every output passes through ``mask_secrets``.
"""

from __future__ import annotations

from .trace import SipRecord, mask_secrets, render_trace, wire_messages

__all__ = ["SipRecord", "mask_secrets", "render_trace", "wire_messages"]
