"""Entry point of an agent process: ``python -m pytest_sipflow.agent --fd N [--name NAME]``."""

from .pj.runtime import main

if __name__ == "__main__":
    raise SystemExit(main())
