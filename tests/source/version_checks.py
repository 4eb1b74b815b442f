#!/usr/bin/env python3
"""Every CPython version fact lives in the model's version file, sampler/model/python_version.cpp
(and its header): no other C++ source of pysample compares a version number with a version.

Flagged, outside that file, after comments are removed:
- a major or minor number compared with a literal (`version.major < 3`, `minor_ >= 10`,
  `offsets->major() != 3`), either way round;
- a comparison with a literal version pair (`version >= std::pair{3, 11}`);
- the major version taken from a PY_VERSION_HEX value and compared (`(hex >> 24) == 3`);
- a list of versions written out in a string (`"3.6 to 3.15"`): messages ask
  supported_versions_text().
Table lookups that compare one version with another (`layout.major == major`) are not facts and
pass. The generated layout and instruction tables are data, not code, and are not read.

Usage: version_checks.py [--root DIR]     exit 0 when clean, 1 with each finding listed
"""
import argparse
import os
import re
import sys

ALLOWED = {"sampler/model/python_version.cpp", "sampler/model/python_version.hpp"}
SKIPPED = {"sampler/model/layouts_generated.inc", "sampler/model/opcodes_generated.inc"}
LIBRARIES = ("attach", "symbolize", "sampler", "exporters")

OP = r"(?:==|!=|<=|>=|<|>)"
VERSION_WORD = r"\w*(?:major|minor)\w*(?:\(\))?"
CHECKS = [
    # clang-format puts spaces around comparisons and none before a template's closing '>'.
    ("version number compared with a literal", re.compile(r"\b%s\s+%s\s+\d" % (VERSION_WORD, OP))),
    ("literal compared with a version number", re.compile(r"\b\d+\s+%s\s+[\w.>()-]*?\b%s" % (OP, VERSION_WORD))),
    ("comparison with a literal version pair",
     re.compile(r"%s\s*(?:std::)?(?:make_)?pair\s*(?:<[^>]*>)?\s*[{(]\s*\d+\s*,\s*\d+" % OP)),
    ("major version of a PY_VERSION_HEX compared", re.compile(r">>\s*24\s*\)?\s*%s\s*\d" % OP)),
]
VERSION_LIST = re.compile(r'"[^"\n]*\b[23]\.\d+ (?:to|-) [23]\.\d+')

# (source line, flagged?) pairs the checks must get right; run before every scan.
SELF_TEST = [
    ("if (version_.major < 3 || (version_.major == 3 && version_.minor < 13)) return;", True),
    ("std::int64_t lasti_scale = (major_ == 3 && minor_ >= 10) ? 2 : 1;", True),
    ("if (offsets.major() != 3) return nullptr;", True),
    ("bool has_base_frame = major_ > 3 || (3 < minor_);", True),
    ("if (version >= std::pair{3, 11}) {", True),
    ("if ((hex >> 24) == 3) return {};", True),
    ('throw Error("it reads Python 2.7 and 3.6 to 3.15");', True),
    ("if (layout.major == major && layout.minor == minor) return layout;", False),
    ("facts.dict_format = DictFormat::Open27;", False),
    ("std::array<std::uint8_t, 3> minor_bytes{};", False),
    ("// 3.6 to 3.10 point f_gen at the generator", False),
]


def strip_comments(text):
    """C++ source without // and /* */ comments, string literals kept; line numbers kept."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_strings(line):
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', line)


def findings_in(text):
    """(line number, what, line) for each flagged line of a source text."""
    found = []
    for number, line in enumerate(strip_comments(text).splitlines(), 1):
        code = without_strings(line)
        for what, pattern in CHECKS:
            if pattern.search(code):
                found.append((number, what, line.strip()))
        if VERSION_LIST.search(line):
            found.append((number, "versions listed in a string", line.strip()))
    return found


def self_test():
    for line, flagged in SELF_TEST:
        if bool(findings_in(line)) != flagged:
            sys.exit("version_checks: the checks %s %r" % ("miss" if flagged else "wrongly flag", line))


def sources(root):
    for library in LIBRARIES:
        for directory, _, files in os.walk(os.path.join(root, library)):
            for name in sorted(files):
                if name.endswith((".cpp", ".hpp", ".inc", ".h")):
                    path = os.path.join(directory, name)
                    yield os.path.relpath(path, root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    args = parser.parse_args()
    self_test()
    problems = []
    scanned = 0
    for relative in sources(args.root):
        if relative in ALLOWED or relative in SKIPPED:
            continue
        scanned += 1
        with open(os.path.join(args.root, relative), encoding="utf-8", errors="replace") as f:
            for number, what, line in findings_in(f.read()):
                problems.append("%s:%d: %s: %s" % (relative, number, what, line))
    if scanned == 0:
        sys.exit("version_checks: no sources under %s" % args.root)
    for problem in problems:
        print(problem)
    if problems:
        print("version_checks: %d version fact(s) outside %s; add a fact to VersionFacts or a field to the "
              "generated layout and ask it instead" % (len(problems), " and ".join(sorted(ALLOWED))))
        return 1
    print("version_checks: %d sources, no version fact outside the model's version file" % scanned)
    return 0


if __name__ == "__main__":
    sys.exit(main())
