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


def parse_annotate(path):
    """{function: {"total": %, "own": %, "lines": {number: (own %, total %, text)}, "notes": [..]}}."""
    import re
    functions, current = {}, None
    header = re.compile(r"^(\S+) \((.*?)(?::(\d+))?\): total ([\d.]+)%, own ([\d.]+)%$")
    row = re.compile(r"^ {0,8}([\d.]+%|)\s*?([\d.]+%|)\s+(\d+)  (.*)$")
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        match = header.match(line)
        if match:
            current = functions.setdefault(match.group(1), {"file": match.group(2), "total": float(match.group(4)),
                                                            "own": float(match.group(5)), "lines": {},
                                                            "notes": []})
            continue
        if current is None or not line.strip() or line.strip() in ("...", "own   total  line"):
            continue
        if line.startswith("  ["):
            current["notes"].append(line.strip())
            continue
        own, total, number, text = line[:8].strip(), line[8:16].strip(), line[16:22].strip(), line[24:]
        check(number.isdigit(), "malformed annotate line %r" % line)
        value = lambda text: float(text.rstrip("%")) if text else 0.0
        current["lines"][int(number)] = (value(own), value(total), text)
    return functions


def test_annotate(pysample, python, tmp):
    """record --format annotate of the classic loops: each function's source with its lines' shares, which
    add up to the function's own share; the loops' lines hold their samples; a source changed after the
    process started is flagged."""
    import os
    import time
    out = os.path.join(tmp, "classics.annotate.txt")
    # Every tick counts the busy thread (--idle), so a loaded machine still gives enough samples; the run is
    # longer until the two loops compared below have 50 samples each.
    with Workload(python, "bytecode_classics.py", 120) as workload:
        time.sleep(0.2)
        os.utime(workload.path if "::" not in python else python.split("::")[0] + workload.path)
        for duration in (3, 6, 12, 24):
            result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "--duration", str(duration),
                                             "--rate", "250", "--idle", "-o", out, "--top", "7"])
            check(result.returncode == 0, "record failed: %s" % result.stderr)
            functions = parse_annotate(out)
            samples = int(open(out, encoding="utf-8").readline().split()[2])
            if all(functions.get(name, {}).get("own", 0) * samples >= 5000 for name in ("dynamic", "cached")):
                break
    print(open(out, encoding="utf-8").read())
    check(CLASSICS <= set(functions), "annotate shows %s" % sorted(functions))
    for name in CLASSICS:
        entry = functions[name]
        own_lines = sum(own for own, _, _ in entry["lines"].values())
        check(abs(own_lines - entry["own"]) <= 0.1 * len(entry["lines"]) + 0.05,
              "%s: its lines' own shares add up to %.1f%%, the function's to %.1f%%" % (name, own_lines, entry["own"]))
        check(any(text.lstrip().startswith("def " + name) for _, _, text in entry["lines"].values()),
              "%s: its def line is not shown" % name)
        check(any("modified" in note for note in entry["notes"]), "%s: the touched source is not flagged" % name)
    for name, marker in (("dynamic", "math.sqrt(v)"), ("cached", "sqrt(v)")):
        lines = functions[name]["lines"]
        hottest = max(lines.values(), key=lambda line: line[0])
        check(marker in hottest[2], "%s: the hottest line is %r" % (name, hottest[2]))


TESTS = {"dump": test_dump, "annotate": test_annotate}

if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
