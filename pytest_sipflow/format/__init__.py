"""The SIPFLOW file format: models (pydantic), the loaded graph and ``${NAME}`` values.

Knows nothing of agents or pytest, so a file can be checked without starting anything.
"""
