#!/usr/bin/env python3
"""The code's layers depend one way, as the layout promises: each library's sources include only
the headers of the libraries below it.

    attach  <-  symbolize  <-  sampler/model  <-  sampler/engine  <-  sampler/commands
    exporters (on its own)                            engine and commands use it too

Usage: layers.py [--root DIR]     exit 0 when every include points down, 1 with each one that does not
"""
import argparse
import os
import re
import sys

# Where a library's sources are, and the include prefixes (its own and the ones below) they may use.
LAYERS = {
    "attach": ("attach", {"attach/"}),
    "symbolize": ("symbolize", {"attach/", "symbolize/"}),
    "exporters": ("exporters", {"exporters/"}),
    "model": ("sampler/model", {"attach/", "symbolize/", "model/"}),
    "engine": ("sampler/engine", {"attach/", "symbolize/", "exporters/", "model/", "engine/"}),
    "commands": ("sampler/commands", {"attach/", "symbolize/", "exporters/", "model/", "engine/", "commands/",
                                      "sampler/"}),
}
PROJECT_PREFIXES = ("attach/", "symbolize/", "exporters/", "model/", "engine/", "commands/", "sampler/")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    args = parser.parse_args()
    problems, scanned = [], 0
    for layer, (folder, allowed) in LAYERS.items():
        for directory, _, files in os.walk(os.path.join(args.root, folder)):
            for name in sorted(files):
                if not name.endswith((".cpp", ".hpp", ".inc")):
                    continue
                path = os.path.join(directory, name)
                scanned += 1
                with open(path, encoding="utf-8", errors="replace") as f:
                    for header in INCLUDE.findall(f.read()):
                        if "/" not in header:
                            # A private header beside the file is part of the same library.
                            if not os.path.exists(os.path.join(directory, header)):
                                problems.append("%s: includes \"%s\", not beside it; name its library"
                                                % (os.path.relpath(path, args.root), header))
                        elif header.startswith(PROJECT_PREFIXES) and not header.startswith(tuple(allowed)):
                            problems.append("%s (%s): includes \"%s\", which is not below it"
                                            % (os.path.relpath(path, args.root), layer, header))
    if scanned == 0:
        sys.exit("layers: no sources under %s" % args.root)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print("layers: %d sources, every include points down" % scanned)
    return 0


if __name__ == "__main__":
    sys.exit(main())
