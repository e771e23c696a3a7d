"""This repository's own suite helpers (not part of the package): fixed accounts, timings.

Importable as ``support`` because pyproject.toml puts ``tests/`` on pytest's ``pythonpath``.
"""
