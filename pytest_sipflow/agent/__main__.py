"""Entry point of an agent process: ``python -m pytest_sipflow.agent --fd N [--name NAME]``,
or of the agents' fork server: ``... --fork-server --fd N``."""

import sys

if __name__ == "__main__":
    if "--fork-server" in sys.argv:
        from .forkserver import serve

        raise SystemExit(serve(int(sys.argv[sys.argv.index("--fd") + 1])))
    from .pj.runtime import main

    raise SystemExit(main())
