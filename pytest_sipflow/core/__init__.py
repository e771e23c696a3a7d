"""The call core: call steps, dialog keys and target rules shared by the engine and ``ua.py``.

Imports neither pytest nor pjsua2; it talks to agents only through their request/event API.
"""
