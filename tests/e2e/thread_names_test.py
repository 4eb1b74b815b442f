#!/usr/bin/env python3
"""Thread names set by threading.Thread(name=...) appear in `dump`, in `record --threads` roots
and in speedscope's per-thread profiles, and a thread renamed while recording shows its new name.

Usage: thread_names_test.py --pysample BIN --python INTERPRETER
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_e2e import Failure, Workload, check, run_pysample  # noqa: E402

WORKERS = ["worker-alpha", u"ingest pipeline \u2603", "a-thread-name-of-forty-characters-exactl"]
RENAMED = "worker-renamed"


def rename_flag(python, tmp):
    """The file whose creation makes the workload rename a thread: (path outside, path the workload sees)."""
    if "::" not in python:
        path = os.path.join(tmp, "rename")
        return path, path
    root = python.split("::", 1)[0]
    inner = "/tmp/pysample-workloads/rename-%d" % os.getpid()
    outer = root + inner
    if os.path.exists(outer):
        os.remove(outer)
    return outer, inner


def dump_names(pysample, pid):
    """tid -> name of every `Thread <tid> "<name>"` line of `pysample dump`."""
    result = run_pysample(pysample, ["dump", "--pid", str(pid)])
    print(result.stdout)
    check(result.returncode == 0, "dump failed with %d" % result.returncode)
    names = {}
    for line in result.stdout.splitlines():
        match = re.match(r'^Thread (\d+) "(.*)" \((?:active|idle)\)', line)
        if match:
            names[int(match.group(1))] = match.group(2)
    return names


def check_dump(names, pid, expected):
    print("dump names:", names)
    check(names.get(pid) == "MainThread", "main thread %d not named MainThread: %r" % (pid, names))
    for name in expected:
        check(name in names.values(), "no thread named %r in dump: %r" % (name, names))


def collapsed_roots(path):
    """tid -> {name: samples} of the `thread <tid> (<name>)` root frames."""
    roots = {}
    with open(path, encoding="utf-8") as profile:
        for line in profile:
            frames, _, count = line.rstrip("\n").rpartition(" ")
            match = re.match(r"^thread (\d+) \((.*)\)$", frames.split(";")[0])
            check(match is not None, "missing thread root in %r" % line)
            per_name = roots.setdefault(int(match.group(1)), {})
            per_name[match.group(2)] = per_name.get(match.group(2), 0) + int(count)
    return roots


def speedscope_names(path):
    with open(path, encoding="utf-8") as profile:
        document = json.load(profile)
    return [p["name"] for p in document["profiles"]]


def record(pysample, pid, tmp, duration, during=None):
    collapsed = os.path.join(tmp, "threads.txt")
    speedscope = os.path.join(tmp, "threads.speedscope.json")
    # Wall-clock time: each thread every sample, whatever CPU a loaded machine gives it.
    args = ["record", "--pid", str(pid), "--duration", str(duration), "--threads", "--idle", "-o", collapsed,
            "-o", speedscope]
    started = time.time()
    process = subprocess.Popen([pysample] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        during()
    _, stderr = process.communicate(timeout=duration + 60)
    sys.stdout.write("$ pysample %s  -> exit %d in %.1fs\n%s" % (" ".join(args), process.returncode,
                                                                 time.time() - started, stderr))
    check(process.returncode == 0, "pysample record failed with %d" % process.returncode)
    return collapsed_roots(collapsed), speedscope_names(speedscope)


def test(pysample, python, tmp):
    flag_outside, flag_inside = rename_flag(python, tmp)
    try:
        with Workload(python, "named_threads.py", 60, flag_inside) as workload:
            names = dump_names(pysample, workload.pid)
            check_dump(names, workload.pid, WORKERS)
            tid_of = dict((name, tid) for tid, name in names.items())

            def rename_midway():
                time.sleep(1.5)
                open(flag_outside, "w").close()

            roots, profiles = record(pysample, workload.pid, tmp, 4, rename_midway)
            print("thread roots:", roots)
            print("speedscope profiles:", profiles)
            for name in WORKERS[1:]:
                check(roots.get(tid_of[name], {}).get(name, 0) > 20,
                      "thread %d has too few samples under its name %r: %r" % (tid_of[name], name, roots))
                check("%s (tid %d)" % (name, tid_of[name]) in profiles,
                      "no speedscope profile named %r for thread %d: %r" % (name, tid_of[name], profiles))
            renamed = roots.get(tid_of[WORKERS[0]], {})
            check(renamed.get(WORKERS[0], 0) > 20 and renamed.get(RENAMED, 0) > 20,
                  "thread %d should show both its names, before and after the rename: %r" %
                  (tid_of[WORKERS[0]], renamed))
            check("%s (tid %d)" % (RENAMED, tid_of[WORKERS[0]]) in profiles,
                  "no speedscope profile for the renamed thread: %r" % profiles)
            check_dump(dump_names(pysample, workload.pid), workload.pid, [RENAMED] + WORKERS[1:])
    finally:
        if os.path.exists(flag_outside):
            os.remove(flag_outside)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pysample", required=True)
    parser.add_argument("--python", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pysample-names-") as tmp:
        try:
            test(os.path.abspath(args.pysample), args.python, tmp)
        except Failure as failure:
            print("FAILED thread_names (%s): %s" % (args.python, failure))
            return 1
    print("passed thread_names (%s)" % args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
