"""Print one optional-dependency group of pyproject.toml as pip requirement lines.

Lets a Dockerfile install a service's dependencies in a layer of their own, before the code is
copied, so editing the code does not reinstall TensorFlow. Standard library only.

    python docker/requirements.py training > requirements.txt
    python docker/requirements.py serving --only tensorflow tensorflow-serving-api
    python docker/requirements.py training --only mlflow
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extra", help="optional-dependency group, e.g. training, serving, webui")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="keep just these packages (default: the whole group)")
    parser.add_argument("--exclude", nargs="+", metavar="NAME", default=[],
                        help="leave these packages out (default: none)")
    parser.add_argument("--pyproject", default="pyproject.toml",
                        help="file to read (default: pyproject.toml)")
    args = parser.parse_args(argv)
    with open(args.pyproject, "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    if args.extra not in extras:
        parser.error(f"no extra {args.extra!r}; pyproject.toml has {', '.join(extras)}")
    wanted = {n.lower() for n in args.only} if args.only else None
    unwanted = {n.lower() for n in args.exclude}
    lines = [r for r in extras[args.extra]
             if (wanted is None or _name(r) in wanted) and _name(r) not in unwanted]
    if wanted and len(lines) != len(wanted):
        parser.error(f"extra {args.extra!r} lacks some of {', '.join(sorted(wanted))}")
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
