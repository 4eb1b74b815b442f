#!/usr/bin/env python3
"""End-to-end: pysample's memory stays bounded by what it aggregates, not by how long it runs.

Usage: memory_test.py --pysample BIN --python INTERPRETER long_run

A workload whose stacks keep changing (thousands of distinct ones a second) is sampled at 2 kHz
for 20 s (longer when the machine gives fewer samples), writing an SVG flame graph and collapsed stacks; pysample's peak resident memory, as it
logs it, must stay within a fixed bound and grow by little per distinct stack over a 1 s run's.
"""
import math
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_e2e import check, main, parse_collapsed  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANY_STACKS = os.path.join(REPO, "scripts", "bench_workloads", "many_stacks.py")

PEAK_LIMIT_KB = 40 * 1024  # a fixed bound, over the run and the writing of its outputs
BYTES_PER_STACK_LIMIT = 400  # growth with the profile's distinct stacks, outputs included
MINIMUM_SAMPLES = 20000  # in the long run


def record_measured(pysample, pid, seconds, outputs):
    """Runs pysample record -v on pid; returns (exit status, peak RSS in kB as pysample logs it).

    pysample reports its own VmHWM: a parent's wait4 would also count this test's memory, which
    the child had before it started pysample."""
    argv = [pysample, "record", "--pid", str(pid), "--rate", "2000", "--duration", str(seconds), "-v"]
    for path in outputs:
        argv += ["-o", path]
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=seconds + 120)
    match = re.search(r"peak resident memory (\d+) kB", result.stderr)
    check(match is not None, "pysample -v did not log its peak memory: %r" % result.stderr[-500:])
    peak_kb = int(match.group(1))
    summary = [line for line in result.stderr.splitlines() if "[debug]" not in line]
    sys.stdout.write("$ %s\n  -> exit %d, peak RSS %d kB\n%s\n" % (" ".join(argv[1:]), result.returncode, peak_kb,
                                                                   "\n".join(summary[:4])))
    return result.returncode, peak_kb


def test_long_run(pysample, python, tmp):
    if "::" in python:
        root, inner = python.split("::", 1)
        staged = os.path.join(root, "tmp", "pysample-many-stacks-%d.py" % os.getpid())
        with open(MANY_STACKS) as source, open(staged, "w") as copy:
            copy.write(source.read())
        command = ["chroot", root, inner, "/tmp/" + os.path.basename(staged)]
    else:
        command = [python, MANY_STACKS]
    target = subprocess.Popen(command)
    try:
        time.sleep(1.0)
        check(target.poll() is None, "many_stacks.py did not start")
        # A short run gives the baseline: the program, its libraries and the fixed caches.
        short = [os.path.join(tmp, "short.svg"), os.path.join(tmp, "short.txt")]
        code, base_kb = record_measured(pysample, target.pid, 1, short)
        check(code == 0, "short run: exit %d" % code)
        # Long enough for the samples the check needs at the rate this machine gives now (a
        # loaded one gives less than the 2 kHz asked), with a margin.
        rate = max(sum(count for _, count in parse_collapsed(short[1])), 1)
        seconds = min(max(20, math.ceil(1.5 * MINIMUM_SAMPLES / rate)), 80)
        outputs = [os.path.join(tmp, "long.svg"), os.path.join(tmp, "long.txt")]
        code, peak_kb = record_measured(pysample, target.pid, seconds, outputs)
        check(code == 0, "long run: exit %d" % code)
    finally:
        target.kill()
        target.wait()
    stacks = parse_collapsed(outputs[1])
    samples = sum(count for _, count in stacks)
    print("%d samples, %d distinct stacks; peak RSS %d kB, %d kB for the 1 s run" %
          (samples, len(stacks), peak_kb, base_kb))
    check(samples >= MINIMUM_SAMPLES, "only %d samples: too few to load the profile" % samples)
    check(peak_kb <= PEAK_LIMIT_KB, "peak RSS %d kB over the %d kB bound" % (peak_kb, PEAK_LIMIT_KB))
    # The growth per stack says little over a few stacks (a target starved of CPU varies less).
    if len(stacks) >= 5000:
        per_stack = 1024.0 * max(0, peak_kb - base_kb) / len(stacks)
        check(per_stack <= BYTES_PER_STACK_LIMIT,
              "%.0f bytes of peak RSS per distinct stack, over %d" % (per_stack, BYTES_PER_STACK_LIMIT))
    else:
        print("only %d distinct stacks: the growth per stack is not checked" % len(stacks))
    with open(outputs[0]) as svg:
        check(svg.read().rstrip().endswith("</svg>"), "the SVG is not complete")


if __name__ == "__main__":
    sys.exit(main({"long_run": test_long_run}))
