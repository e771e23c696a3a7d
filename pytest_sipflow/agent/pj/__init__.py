"""The agent's pjsua2 side: the only package of pytest-sipflow that imports pjsua2.

It runs in the agent process only (``python -m pytest_sipflow.agent``): ``runtime`` owns
the Endpoint and the main loop; each other room registers its ops and callbacks in
``ops``. See docs/agent-protocol.md for the rooms.
"""
