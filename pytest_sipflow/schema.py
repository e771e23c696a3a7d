"""``python -m pytest_sipflow.schema``: print (or ``-o`` write) the scenario JSON Schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .format.jsonschema import dumps, shipped_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_sipflow.schema",
        description="The JSON Schema of *.sipflow.json files, for editors (docs/editor.md).")
    parser.add_argument("-o", "--output", help="write it to this file instead of printing it")
    parser.add_argument("--path", action="store_true",
                        help="print where the installed copy is, for editor settings")
    args = parser.parse_args(argv)
    if args.path:
        print(shipped_path())
        return 0
    text = dumps()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.output}: sipflow scenario schema written")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
