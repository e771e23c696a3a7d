"""The media side of a :class:`~pytest_sipflow.api.ua.Call`: its RTP statistics and the
``expectMedia`` check, the same code a scenario's MEDIA/DISCONNECTED node runs."""

from __future__ import annotations

from typing import Any

from ..core import media
from ..core.failures import StepFailed
from ..media.stats import MediaStats


class CallMedia:
    """Mixed into ``Call``: ``media_stats()`` and ``assert_media(**expect)``."""

    def media_stats(self: Any) -> MediaStats | None:
        """The call's RTP statistics: live while it is up; after its end the final ones
        (needs ``sip_instance(..., media=True)``). None: no audio stream."""
        __tracebackhide__ = True
        with self._do("media_stats"):
            if self.is_live:
                return media.sample(self._phone, self.handle)
            ev = next((e for e in self._phone.box.recent(10_000)
                       if e.call == self.handle and e.type == "disconnected"), None)
            if ev is None:
                raise StepFailed(f"call {self.handle} has no statistics: it is not up")
            return media.final(self._phone, ev)

    def assert_media(self: Any, **expect: Any) -> MediaStats | None:
        """Check the call's media as ``expectMedia`` does (``received=True``,
        ``min_packets=50``, ``max_loss_percent=1``, ``min_mos=4``, ``codec="PCMU"``,
        ``srtp=True`` …) on its statistics so far; returns them."""
        __tracebackhide__ = True
        with self._do("assert_media"):
            try:
                wanted = media.wanted(expect)
            except ValueError as exc:
                raise StepFailed(f"bad media expectation: {exc}") from None
        stats = self.media_stats()
        with self._do("assert_media"):
            directory = self.ua._directory  # URI -> name: the instance name wins over its dn
            names = {uri: n for n in directory.names() if (uri := directory.get(n))}
            peer = media.peer_name(self._phone, self.handle, names)
            media.check(wanted, stats, self.ua.name, peer, f"call {self.handle}")
        return stats
