"""pytest glue: collection, options, hooks, per-item outputs and the session state.

Only this package (with ``plugin.py`` and ``fixtures.py``) imports pytest; the layers below
it (api, engine, core, agent, format, sip) stay usable from a plain script.
"""
