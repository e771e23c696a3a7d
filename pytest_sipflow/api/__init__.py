"""The Python API: live user agents (``UserAgent``) and scenarios run from Python code.

The fixtures hand these out; a script may use them without pytest.
"""
