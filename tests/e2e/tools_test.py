#!/usr/bin/env python3
"""End-to-end: the pprof and callgrind files, read by the tools people read them with.

Usage: tools_test.py --pysample BIN --python INTERPRETER TEST

- pprof: one recording written as pprof and as collapsed stacks. `go tool pprof` (Debian's
  golang-go) reads the pprof file: its -top (own and total samples by function), its -traces
  (every stack, with its thread's labels) and its -raw (the period achieved, labels, locations with
  their lines) agree with the collapsed stacks, function by function and stack by stack.
- callgrind: one recording written as callgrind and as collapsed stacks. callgrind_annotate
  (Debian's valgrind) gives each function's exclusive and inclusive samples; they equal the
  function's own and total samples in the collapsed stacks, recursive functions included.

The workload (workloads/call_tree.py) has two named threads, direct recursion, recursion through
another function and a lambda, whose "<lambda>" name pprof must not take for C++ template text.
"""
import collections
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e  # noqa: E402
from run_e2e import Skip, Workload, check, parse_collapsed, run_pysample  # noqa: E402

THREADS = {"worker-a", "worker-b"}
FUNCTIONS = {"spin", "recurse", "recurse_via", "through", "<lambda>", "worker_a", "worker_b"}


def record(pysample, python, tmp, output):
    """One run written as `output` and as collapsed stacks, long enough for every function of the workload
    and 100 samples: a loaded machine gives it less CPU time, so a short run is followed by longer ones."""
    collapsed = os.path.join(tmp, "stacks.txt")
    with Workload(python, "call_tree.py", 300) as workload:
        for duration in (3, 6, 12, 24):
            result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "--duration", str(duration),
                                             "--rate", "200", "-o", output, "-o", collapsed], timeout=120)
            check(result.returncode == 0, "record failed with %d" % result.returncode)
            stacks = parse_collapsed(collapsed)
            total = sum(count for _, count in stacks)
            seen = {frame[0] for frames, _ in stacks for frame in frames}
            if total >= 100 and FUNCTIONS <= seen:
                break
        path = workload.path
    check(total >= 100, "only %d samples recorded in %d s" % (total, duration))
    check(FUNCTIONS <= seen, "the workload's functions %s were not all sampled: %s" % (sorted(FUNCTIONS), sorted(seen)))
    achieved = re.search(r"\(([\d.]+) Hz achieved", result.stderr)
    check(achieved, "no achieved rate in the summary: %r" % result.stderr)
    return stacks, path, float(achieved.group(1))


def tool(command, cwd="/"):
    """Runs a tool (from /, where callgrind_annotate cuts no directory off the file names)."""
    if shutil.which(command[0]) is None:
        raise Skip("%s is not installed (scripts/install-deps installs it)" % command[0])
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=cwd,
                            env=dict(os.environ, HOME=os.environ.get("HOME", "/root")))
    sys.stdout.write("$ %s  -> exit %d\n%s" % (" ".join(command), result.returncode, result.stderr))
    check(result.returncode == 0, "%s failed: %s" % (" ".join(command), result.stderr))
    return result.stdout


def own_and_total(stacks, key):
    """Samples with the function innermost, and with it anywhere on the stack (once per sample)."""
    own, total = collections.Counter(), collections.Counter()
    for frames, count in stacks:
        own[key(frames[-1])] += count
        for function in {key(frame) for frame in frames}:
            total[function] += count
    return own, total


def compare_tables(what, expected, got):
    expected = {name: value for name, value in expected.items() if value}
    got = {name: value for name, value in got.items() if value}
    differing = {name: (expected.get(name), got.get(name)) for name in set(expected) | set(got)
                 if expected.get(name) != got.get(name)}
    check(not differing, "%s differ (pysample's, the tool's): %s" % (what, differing))


def pprof(*args):
    return tool(["go", "tool", "pprof"] + list(args))


def parse_top(text):
    """(flat, cum) by function from `-top` of the samples."""
    flat, cum = {}, {}
    rows = text.split("flat  flat%   sum%        cum   cum%\n", 1)
    check(len(rows) == 2, "no table in -top: %r" % text)
    for line in rows[1].splitlines():
        match = re.match(r"^\s*(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+(.*)$", line)
        check(match, "malformed -top row: %r" % line)
        flat[match.group(3)] = int(match.group(1))
        cum[match.group(3)] = int(match.group(2))
    return flat, cum


def parse_traces(text):
    """{(thread name, functions root first): samples} from `-traces` of the samples."""
    traces = collections.Counter()
    for block in text.split("-----------+-------------------------------------------------------\n")[1:]:
        labels, functions, count = {}, [], None
        for line in block.splitlines():
            label = re.match(r"^\s*(\w+):\s+(.*)$", line)
            if label and count is None:
                labels[label.group(1)] = label.group(2)
                continue
            sample = re.match(r"^\s*(\d+)\s+(.*)$", line)
            if count is None and sample:
                count = int(sample.group(1))
                functions.append(sample.group(2))
            elif line.strip():
                functions.append(line.strip())
        if count is None:
            continue
        check({"thread_id", "thread_name"} <= set(labels), "a trace without its thread's labels: %r" % block)
        traces[(labels["thread_name"], tuple(reversed(functions)))] += count
    return traces


def test_pprof(pysample, python, tmp):
    output = os.path.join(tmp, "profile.pb.gz")
    stacks, path, achieved_hz = record(pysample, python, tmp, output)
    with open(output, "rb") as profile:
        check(profile.read(2) == b"\x1f\x8b", "the pprof file is not gzip-compressed")
    by_name = lambda frame: frame[0]  # noqa: E731
    own, total = own_and_total(stacks, by_name)
    flat, cum = parse_top(pprof("-sample_index=samples", "-top", "-nodecount=100000", "-nodefraction=0", output))
    compare_tables("own samples by function (-top flat)", own, flat)
    compare_tables("total samples by function (-top cum)", total, cum)

    traces = parse_traces(pprof("-sample_index=samples", "-traces", output))
    by_stack = collections.Counter()
    for (thread, functions), count in traces.items():
        by_stack[functions] += count
    expected = collections.Counter()
    for frames, count in stacks:
        expected[tuple(frame[0] for frame in frames)] += count
    compare_tables("samples by stack (-traces)", expected, by_stack)
    threads = {thread for thread, _ in traces}
    check(THREADS <= threads, "thread names in the labels %s, expected %s among them" % (threads, THREADS))

    raw = pprof("-raw", output)
    check(re.search(r"^PeriodType: cpu nanoseconds$", raw, re.M), "no CPU period type in -raw: %r" % raw[:500])
    period = re.search(r"^Period: (\d+)$", raw, re.M)
    # The time between samples achieved (a loaded machine reaches less than the 200 Hz asked), which
    # the summary prints to 0.1 Hz.
    check(period and abs(int(period.group(1)) * achieved_hz / 1e9 - 1) < 0.001 + 0.05 / achieved_hz,
          "a period of %s ns at %.1f Hz achieved" % (period.group(1) if period else None, achieved_hz))
    check(re.search(r"^samples/count cpu/nanoseconds\[dflt\]$", raw, re.M), "sample types in -raw: %r" % raw[:500])
    # Locations: "N: 0xN M=1 function file:line s=first(system name)"
    locations = set()
    for match in re.finditer(r"^\s*\d+: 0x[0-9a-f]+ M=1 (\S+) (.*):(\d+) s=\d+", raw, re.M):
        locations.add((match.group(1), match.group(2), int(match.group(3))))
    sampled = {frame for frames, _ in stacks for frame in frames}
    check(locations == sampled, "locations in -raw differ from the sampled frames: only in -raw %s, only sampled %s"
          % (sorted(locations - sampled)[:5], sorted(sampled - locations)[:5]))
    check(any(name == "<lambda>" and file == path for name, file, _ in locations),
          "no <lambda> location of %s: pprof shortened its name" % path)


def annotate(*args):
    text = tool(["callgrind_annotate", "--threshold=100", "--auto=no"] + list(args))
    rows, totals = {}, None
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not match:
            continue
        count, name = int(match.group(1).replace(",", "")), match.group(2)
        if name == "PROGRAM TOTALS":
            totals = count
            continue
        file, _, function = name.rpartition(":")
        rows[(file, function)] = count
    check(totals is not None, "no PROGRAM TOTALS in callgrind_annotate's output: %r" % text)
    return rows, totals


def test_callgrind(pysample, python, tmp):
    output = os.path.join(tmp, "callgrind.out.test")
    stacks, _, _ = record(pysample, python, tmp, output)
    own, total = own_and_total(stacks, lambda frame: (frame[1] or "???", frame[0]))
    exclusive, totals = annotate(output)
    check(totals == sum(count for _, count in stacks), "PROGRAM TOTALS %d, recorded %d" %
          (totals, sum(count for _, count in stacks)))
    compare_tables("exclusive samples by function", own, exclusive)
    inclusive, _ = annotate("--inclusive=yes", output)
    compare_tables("inclusive samples by function", total, inclusive)
    for name in ("recurse", "recurse_via", "through"):
        check(any(function == name and count > 0 for (_, function), count in inclusive.items()),
              "no inclusive samples of the recursive %s" % name)


TESTS = {"pprof": test_pprof, "callgrind": test_callgrind}


if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
