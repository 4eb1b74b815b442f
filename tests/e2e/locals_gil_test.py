#!/usr/bin/env python3
"""End-to-end tests of `dump --locals` (and `--json`) and of `--gil`.

Usage: locals_gil_test.py --pysample BIN --python INTERPRETER locals|gil
"""
import json
import re
import sys
import time

import run_e2e  # noqa: E402
from run_e2e import Workload, check, markers, python_version, record, run_pysample, wait_until_asleep


def variables_under(lines, header):
    """The `      name = repr` lines printed under the traceback line `header`, as a dict."""
    check(header in lines, "no line %r in the dump" % header)
    found = {}
    for line in lines[lines.index(header) + 1:]:
        if not line.startswith("      "):
            break
        name, sep, value = line.strip().partition(" = ")
        check(sep, "malformed variable line %r" % line)
        check(name not in found, "variable %s printed twice" % name)
        found[name] = value
    return found


def check_variables(shown, expected, where):
    """Every expected variable shown with exactly its repr (and, from JSON, its type)."""
    for name, want in sorted(expected.items()):
        check(name in shown, "%s: variable %s missing; shown: %r" % (where, name, sorted(shown)))
        check(shown[name] == want, "%s: %s is %r, expected %r" % (where, name, shown[name], want))
    extra = set(shown) - set(expected) - {"expected"}
    check(not extra, "%s: unexpected variables %r" % (where, sorted(extra)))


def dump(pysample, pid, *extra):
    result = run_pysample(pysample, ["dump", "--pid", str(pid)] + list(extra))
    check(result.returncode == 0, "dump %s failed with %d: %s" % (" ".join(extra), result.returncode, result.stderr))
    return result.stdout


def test_locals(pysample, python, tmp):
    """A function whose locals hold every kind of value: each shown with exactly the repr (or the
    summary) the interpreter itself gives, in text and in JSON; without --locals none are shown."""
    m = markers("locals_values.py")
    version = python_version(python)
    with Workload(python, "locals_values.py", 60, preamble=1) as workload:
        expected = json.loads(workload.preamble[0])
        wait_until_asleep(pysample, workload.pid)
        text = dump(pysample, workload.pid, "--locals")
        nonblocking = dump(pysample, workload.pid, "--locals", "--nonblocking")
        with_locals = json.loads(dump(pysample, workload.pid, "--locals", "--json"))
        plain = json.loads(dump(pysample, workload.pid, "--json"))
        without = dump(pysample, workload.pid)
        check(workload.proc.poll() is None, "the workload died while being dumped")
    print(text)
    path = workload.path
    module_line = 'File "%s", line %d, in <module>' % (path, m["calltarget"])
    target_line = 'File "%s", line %d, in target' % (path, m["sleep"])
    for name, output in (("dump --locals", text), ("dump --locals --nonblocking", nonblocking)):
        lines = [line.rstrip("\n") for line in output.splitlines()]
        stripped = [line.strip() for line in lines]
        check(stripped.count(module_line) == 1 and stripped.count(target_line) == 1,
              "%s: traceback lines missing:\n%s" % (name, output))
        headers = ["  " + module_line, "  " + target_line]
        check(variables_under(lines, headers[0]) == {}, "%s: module-level frame shows variables" % name)
        check_variables(variables_under(lines, headers[1]), dict((k, v[0]) for k, v in expected.items()), name)
    check("      " not in without and "an_int" not in without, "dump without --locals shows variables")

    check(set(with_locals) == {"process", "threads"}, "JSON keys: %r" % sorted(with_locals))
    process = with_locals["process"]
    check(process["pid"] == workload.pid and "locals_values.py" in process["command_line"] and
          process["python_version"].startswith("%d.%d" % version), "JSON process: %r" % process)
    threads = with_locals["threads"]
    check(len(threads) == 1 and threads[0]["idle"] is True and threads[0]["holds_gil"] is False,
          "JSON threads: %r" % [dict((k, v) for k, v in t.items() if k != "frames") for t in threads])
    frames = threads[0]["frames"]
    check([(f["function"], f["filename"], f["line"]) for f in frames] ==
          [("<module>", path, m["calltarget"]), ("target", path, m["sleep"])],
          "JSON frames (outermost first): %r" % [(f["function"], f["line"]) for f in frames])
    check(frames[0]["locals"] == [], "JSON: the module frame has variables %r" % frames[0]["locals"])
    for variable in frames[1]["locals"]:
        check(set(variable) == {"name", "repr", "type"} and isinstance(variable["repr"], str),
              "JSON variable %r" % variable)
    shown = dict((v["name"], [v["repr"], v["type"]]) for v in frames[1]["locals"])
    check_variables(shown, expected, "dump --locals --json")
    plain_frames = plain["threads"][0]["frames"]
    check([f["function"] for f in plain_frames] == ["<module>", "target"] and
          not any("locals" in f for f in plain_frames), "dump --json without --locals: %r" % plain_frames)

    for subcommand in (["record", "--locals"], ["record", "--json"]):
        result = run_pysample(pysample, subcommand + ["--pid", "1"])
        check(result.returncode == 2, "%s is accepted (exit %d)" % (" ".join(subcommand), result.returncode))


def busy_threads(stacks):
    """The thread roots of collapsed stacks (recorded with --threads), split by what they run."""
    spinning, other = set(), set()
    for frames, _ in stacks:
        names = [f[0] for f in frames[1:]]
        (spinning if "spin" in names else other).add(frames[0][0])
    return spinning, other


def dump_threads(output):
    """(thread line, traceback text) per thread of a text dump."""
    blocks = output.split("\nThread ")[1:]
    return [("Thread " + b.splitlines()[0], b) for b in blocks]


def test_gil(pysample, python, tmp):
    """One CPU-bound thread and two sleeping ones: with --gil only the CPU-bound one is sampled,
    even with --idle, which otherwise keeps the sleepers; a process in which every thread sleeps
    gives no stacks at all."""
    m = markers("gil_threads.py")
    with Workload(python, "gil_threads.py", 60) as workload:
        time.sleep(0.3)
        path = workload.path
        stacks, result = record(pysample, workload.pid, tmp, "--gil", "--idle", "--threads", duration=3)
        samples = int(re.search(r"(\d+) samples in", result.stderr).group(1))
        kept = sum(c for _, c in stacks)
        spinning, other = busy_threads(stacks)
        print("--gil --idle: %d of %d samples kept, threads %r, others %r" % (kept, samples, spinning, other))
        check(not other, "--gil kept stacks of threads that do not run spin(): %r" %
              [f for f, _ in stacks if f[0][0] in other][:3])
        check(len(spinning) == 1, "--gil: spin() seen in threads %r" % spinning)
        check(kept >= 0.5 * samples and kept > 50, "--gil kept only %d of %d samples" % (kept, samples))
        for frames, _ in stacks:
            check(frames[-1][:2] == ("spin", path) and frames[-1][2] in range(m["spin"] - 2, m["spin"] + 1),
                  "--gil: unexpected leaf %r" % (frames[-1],))

        stacks, _ = record(pysample, workload.pid, tmp, "--gil", "--threads", duration=1)
        check(stacks and busy_threads(stacks)[1] == set(), "--gil without --idle: %r" % stacks[:3])

        stacks, _ = record(pysample, workload.pid, tmp, "--idle", duration=1)
        sleeping = [f for f, _ in stacks if ("sleep_long", path, m["sleep"]) in f]
        check(sleeping, "without --gil, --idle shows no sleeping thread: %r" % stacks[:3])

        for attempt in range(10):
            output = dump(pysample, workload.pid)
            holders = [(line, block) for line, block in dump_threads(output) if "(holds the GIL)" in line]
            check(len(holders) <= 1, "several threads hold the GIL:\n%s" % output)
            if holders:
                break
        print(output)
        check(holders, "no thread marked as holding the GIL in 10 dumps")
        check("in spin" in holders[0][1], "the GIL holder does not run spin():\n%s" % holders[0][1])
        only = dump(pysample, workload.pid, "--gil", "--json")
        threads = json.loads(only)["threads"]
        check(len(threads) <= 1 and all(t["holds_gil"] and t["frames"][-1]["function"] == "spin" for t in threads),
              "dump --gil --json: %s" % only)

    with Workload(python, "sleeper.py", 60) as workload:
        wait_until_asleep(pysample, workload.pid)
        stacks, result = record(pysample, workload.pid, tmp, "--gil", "--idle", duration=1)
        check(sum(c for _, c in stacks) == 0, "--gil kept stacks while every thread sleeps: %r" % stacks)
        output = dump(pysample, workload.pid, "--gil")
        check("No thread holds the GIL." in output and "Thread " not in output, "dump --gil: %s" % output)


TESTS = {"locals": test_locals, "gil": test_gil}


if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
