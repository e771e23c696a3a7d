"""pytest-sipflow: SIPFLOW call-flow scenarios as pytest tests over real SIP."""

from .errors import ScenarioFailed, ScenarioFormatError, SipflowError, SipflowWarning

__all__ = ["ScenarioFailed", "ScenarioFormatError", "SipflowError", "SipflowWarning"]
__version__ = "0.1.0"
