"""The graph engine: runs a scenario graph against SIP agents; no pytest inside."""
