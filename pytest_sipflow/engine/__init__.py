"""The graph engine: runs a scenario graph over agents; imports nothing of pytest or reports."""
