"""pytest-sipflow: SIPFLOW call-flow scenarios as pytest tests over real SIP.

``UserAgent`` and ``Scenario`` are loaded on first use: every agent process imports this
module, and the plugin's import cost stays free of the engine and pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ScenarioFailed, ScenarioFormatError, SipflowError, SipflowWarning

if TYPE_CHECKING:
    from .api.scenario import Scenario
    from .api.ua import UserAgent

__all__ = ["Scenario", "ScenarioFailed", "ScenarioFormatError", "SipflowError",
           "SipflowWarning", "UserAgent"]
__version__ = "0.1.0"

_LAZY = {"UserAgent": "api.ua", "Scenario": "api.scenario"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
