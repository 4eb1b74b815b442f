#!/usr/bin/env python3
"""End-to-end tests of the instructions pysample reads (--opcodes).

dump: the classic loops (bytecode_classics.py) are dumped again and again with --opcodes --json;
every instruction shown for a frame must be one the target interpreter's own dis lists for that
code at that offset, with the same base name and line, and from 3.11 the specialized instructions
the interpreter rewrote its hot loops into must show up under their base name. Then again under
a trace function, which from 3.12 hides instructions behind INSTRUMENTED_LINE: none may be unknown.

Usage: opcodes_test.py --pysample BIN --python INTERPRETER dump
"""
import json
import subprocess
import sys

import run_e2e  # noqa: E402
from run_e2e import Workload, check, interpreter_command, python_version, run_pysample

CLASSICS = {"counter", "iterator", "dynamic", "cached", "c_style", "pythonic"}
DUMPS = 40


def dis_map(python, workload_path):
    """{"name:firstline": {offset: [base name, line]}} from the target interpreter's dis."""
    command, _ = interpreter_command(python, "dis_map.py")
    result = subprocess.run(command + [workload_path], capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, "dis_map.py failed: %s" % result.stderr)
    return json.loads(result.stdout)


def code_key(listing, function, line):
    """The dis entry of the function whose code holds this line (first lines differ from frames')."""
    candidates = [key for key in listing if key.rsplit(":", 1)[0] == function]
    check(len(candidates) == 1, "no single code object %s in dis's listing: %r" % (function, candidates))
    return candidates[0]


def test_dump(pysample, python, tmp):
    check_dumps(pysample, python, traced=False)
    check_dumps(pysample, python, traced=True)


def check_dumps(pysample, python, traced):
    version = python_version(python)
    specializing = version >= (3, 11) and not traced
    with Workload(python, "bytecode_classics.py", 120, "traced" if traced else "plain") as workload:
        listing = dis_map(python, workload.path)
        checked, specialized, unknown = 0, 0, 0
        seen = set()
        for _ in range(DUMPS):
            result = run_pysample(pysample, ["dump", "--pid", str(workload.pid), "--opcodes", "--json"])
            check(result.returncode == 0, "dump --opcodes failed: %s" % result.stderr)
            document = json.loads(result.stdout)
            for thread in document["threads"]:
                for frame in thread["frames"]:
                    if "instruction" not in frame:
                        continue
                    instruction = frame["instruction"]
                    if frame["function"] not in CLASSICS and frame["function"] not in ("<module>", "tracer"):
                        continue
                    if instruction is None and frame["started"]:
                        unknown += 1
                        continue
                    if instruction is None:
                        continue
                    entry = listing[code_key(listing, frame["function"], frame["line"])]
                    offset = str(instruction["offset"])
                    where = "%s offset %s (%s)" % (frame["function"], offset, instruction["name"])
                    check(offset in entry, "%s: dis lists no instruction at that offset: %r" % (where, sorted(
                        entry, key=int)))
                    dis_name, dis_line = entry[offset]
                    check(instruction["base"] == dis_name, "%s: dis says %s" % (where, dis_name))
                    check(frame["line"] == dis_line, "%s: on line %d, dis says %s" % (where, frame["line"], dis_line))
                    if specializing:
                        check(instruction["line"] == dis_line, "%s: its location says line %r" % (
                            where, instruction["line"]))
                        check(instruction["column"] is not None and instruction["end_column"] is not None,
                              "%s: no columns" % where)
                    if instruction["name"] != instruction["base"]:
                        check(instruction["name"].endswith(" (%s)" % instruction["base"]),
                              "%s: a specialized name must give its base" % where)
                        specialized += 1
                    if frame["function"] in CLASSICS:
                        seen.add(frame["function"])
                    checked += 1
        check(workload.proc.poll() is None, "the workload died while being dumped")
    print("%s: checked %d frames, %d specialized, %d unknown; functions %s" % (
        "traced" if traced else "plain", checked, specialized, unknown, sorted(seen)))
    check(checked >= DUMPS, "only %d frames checked in %d dumps" % (checked, DUMPS))
    check(unknown == 0, "%d frames' instructions were not known" % unknown)
    check(len(seen) >= 3, "the dumps caught only %s" % sorted(seen))
    if specializing:
        check(specialized > 0, "no specialized instruction in %d frames of hot loops" % checked)
    elif version < (3, 11):
        check(specialized == 0, "specialized instructions before 3.11")


TESTS = {"dump": test_dump}

if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
