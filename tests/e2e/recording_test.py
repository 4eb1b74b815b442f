#!/usr/bin/env python3
"""End-to-end: recordings (record -o run.pysample) and the reports made from them.

Usage: recording_test.py --pysample BIN --python INTERPRETER TEST

- identical: one run written in every format and as a recording at once; `report` of the
  recording with the run's options writes every format byte for byte as `record` did. Once per
  way of counting and shaping stacks: CPU time; --idle --threads --nolineno; --gil; --subprocesses
  --threads (a multiprocessing pool); --async --idle (3.8+).
- kill9: pysample killed with SIGKILL in the middle of a run: the recording reads up to its last
  block, written at most a second before the kill, and its report says the run has no end.
- damaged: a recording cut in the middle of a block, one with a changed byte, one that is not a
  recording and one with a header alone: the first two are reported up to the damage, with a line
  saying where it is; the last two are refused (exit code 9). A recording to a full disk (/dev/full)
  says what it lost, exits with 8, and the run's other output is still written.
- filters: --thread (by name and by id), --process, --from/--to (every event of the Chrome trace
  inside the window), --cpu of a wall-clock recording (fewer samples: the running threads') and
  views a recording cannot give (--idle of a CPU-time recording, --gil of one without: exit 2).
- diff: two runs of a workload whose hot function's share grows by about 60 points, one recorded, the
  other as collapsed stacks. In headless Chromium the differential flamegraph shows the grown
  frame red with the change the runs' own outputs give, an unchanged one white, and the function
  the second run no longer calls listed as gone; its zoom and search work; the text table gives
  the same change.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e  # noqa: E402
from run_e2e import Workload, check, parse_collapsed, python_version, run_pysample  # noqa: E402

FORMATS = {
    "flamegraph": ".svg",
    "collapsed": ".txt",
    "speedscope": ".speedscope.json",
    "pstats": ".pstats",
    "text": ".prof.txt",
    "chrome": ".json",
    "pprof": ".pb.gz",
}
EXIT_USAGE = 2
EXIT_OUTPUT_UNWRITABLE = 8
EXIT_BAD_INPUT = 9


def outputs(base):
    files = {name: base + suffix for name, suffix in FORMATS.items()}
    files["callgrind"] = os.path.join(os.path.dirname(base), "callgrind.out." + os.path.basename(base))
    return files


def output_args(files):
    args = []
    for path in files.values():
        args += ["-o", path]
    return args


def record_and_report(pysample, pid, tmp, name, run_options, report_options=None, duration=2):
    """Records with `run_options` into every format and a recording, reports the recording with the same
    options (or `report_options`); returns (recorded files, reported files, record's stderr)."""
    recording = os.path.join(tmp, name + ".pysample")
    recorded = outputs(os.path.join(tmp, name + "-record"))
    reported = outputs(os.path.join(tmp, name + "-report"))
    result = run_pysample(pysample, ["record", "--pid", str(pid), "--duration", str(duration), "--rate", "200",
                                     "--sort", "cumtime", "-o", recording] + run_options + output_args(recorded))
    check(result.returncode == 0, "record failed with %d" % result.returncode)
    check(re.search(r"wrote %s \(recording, [\d.]+ KiB\)" % re.escape(recording), result.stderr),
          "the summary does not list the recording: %r" % result.stderr)
    options = run_options if report_options is None else report_options
    report = run_pysample(pysample, ["report", recording, "--sort", "cumtime"] + options + output_args(reported))
    check(report.returncode == 0, "report failed with %d" % report.returncode)
    return recorded, reported, recording, report


def check_identical(recorded, reported, what):
    for name in recorded:
        with open(recorded[name], "rb") as a, open(reported[name], "rb") as b:
            first, second = a.read(), b.read()
        # Collapsed stacks are empty when a loaded machine gave the threads no CPU time; every other
        # format has at least the run's description.
        check(first or name == "collapsed", "%s: record wrote an empty %s file" % (what, name))
        check(first == second, "%s: the %s file of report differs from record's (%d and %d bytes)" %
              (what, name, len(first), len(second)))
    print("%s: all %d formats identical" % (what, len(recorded)))


RUN_OPTION_SETS = [
    ("cpu", "call_tree.py", []),
    ("idle", "call_tree.py", ["--idle", "--threads", "--nolineno"]),
    ("gil", "call_tree.py", ["--gil"]),
]


def test_identical(pysample, python, tmp):
    for name, workload, options in RUN_OPTION_SETS:
        with Workload(python, workload, 60) as running:
            recorded, reported, _, _ = record_and_report(pysample, running.pid, tmp, name, options)
        check_identical(recorded, reported, name)
    with Workload(python, "pool.py") as running:
        recorded, reported, _, _ = record_and_report(pysample, running.pid, tmp, "subprocesses",
                                                     ["--subprocesses", "--threads"], ["--threads"], duration=3)
    check_identical(recorded, reported, "subprocesses")
    check(any(frames[0][0].startswith("process ") for frames, _ in parse_collapsed(recorded["collapsed"])),
          "no process roots under --subprocesses")
    if python_version(python) >= (3, 8):
        with Workload(python, "async_service.py", 600, preamble=1) as running:
            recorded, reported, _, _ = record_and_report(pysample, running.pid, tmp, "async", ["--async", "--idle"],
                                                         ["--idle"])
        check_identical(recorded, reported, "async")
        check(any(frame[0].startswith("<task ") for frames, _ in parse_collapsed(recorded["collapsed"])
                  for frame in frames), "no task markers under --async")


def report_summary(pysample, recording, tmp, *extra):
    out = os.path.join(tmp, "report.txt")
    result = run_pysample(pysample, ["report", recording, "-o", out] + list(extra))
    return result, out


def test_kill9(pysample, python, tmp):
    recording = os.path.join(tmp, "killed.pysample")
    with Workload(python, "call_tree.py", 60) as running:
        # --idle: every thread every sample, whatever CPU time a loaded machine leaves the workload.
        process = subprocess.Popen([pysample, "record", "--pid", str(running.pid), "--rate", "200", "-q", "--idle",
                                    "-o", recording], stderr=subprocess.PIPE, text=True)
        # Until the recording holds three blocks' worth of run, then at once.
        started = time.time()
        while time.time() - started < 60 and (not os.path.exists(recording) or
                                              os.path.getsize(recording) < 16 or time.time() - started < 3.5):
            time.sleep(0.05)
        killed_at = time.time() - started
        process.send_signal(signal.SIGKILL)
        process.wait()
    result, out = report_summary(pysample, recording, tmp)
    check(result.returncode == 0, "report of a killed run failed with %d" % result.returncode)
    check("has no end: its run stopped before it could finish" in result.stderr or
          "is damaged or cut short" in result.stderr, "no line saying the run did not finish: %r" % result.stderr)
    held = re.search(r"(\d+) samples in ([\d.]+) s", result.stderr)
    check(held, "no count of what was read: %r" % result.stderr)
    # Blocks are written every second of run; pysample's own start (attaching) comes before the run.
    check(float(held.group(2)) >= killed_at - 2.5 and int(held.group(1)) > 0,
          "the recording holds %s s of a run killed after %.1f s" % (held.group(2), killed_at))
    stacks = parse_collapsed(out)
    check(any(frame[0] == "spin" for frames, _ in stacks for frame in frames), "no samples of spin() reported")
    damage = re.search(r"is damaged or cut short: (.*?); reporting", result.stderr)
    if damage:
        check("cut short" in damage.group(1), "a killed run's last block is damaged, not cut short: %r" %
              damage.group(1))


def block_offsets(data):
    """(start, end) of each block: after the 16-byte header, 'PBLK' and three little-endian u32s."""
    offsets, at = [], 16
    while at + 16 <= len(data):
        check(data[at:at + 4] == b"PBLK", "no block at byte %d" % at)
        size = int.from_bytes(data[at + 4:at + 8], "little")
        offsets.append((at, at + 16 + size))
        at += 16 + size
    return offsets


def test_damaged(pysample, python, tmp):
    recording = os.path.join(tmp, "whole.pysample")
    with Workload(python, "call_tree.py", 60) as running:
        result = run_pysample(pysample, ["record", "--pid", str(running.pid), "--duration", "3.5", "--rate", "200",
                                         "--idle", "-o", recording])
        check(result.returncode == 0, "record failed with %d" % result.returncode)
    with open(recording, "rb") as source:
        data = source.read()
    blocks = block_offsets(data)
    check(len(blocks) >= 3, "a 3.5 s recording in %d blocks: one is written every second" % len(blocks))

    cut = os.path.join(tmp, "cut.pysample")
    with open(cut, "wb") as out:
        out.write(data[:(blocks[1][0] + blocks[1][1]) // 2])
    result, out = report_summary(pysample, cut, tmp)
    check(result.returncode == 0, "report of a cut recording failed with %d" % result.returncode)
    check(re.search(r"is damaged or cut short: block 2 at byte %d is cut short: \d+ of its \d+ bytes were written; "
                    r"reporting the 1 blocks before it" % blocks[1][0], result.stderr),
          "no line saying where the recording is cut: %r" % result.stderr)
    check(parse_collapsed(out), "nothing reported of the first block")

    changed = os.path.join(tmp, "changed.pysample")
    flipped = bytearray(data)
    flipped[blocks[1][0] + 20] ^= 0xFF
    with open(changed, "wb") as out:
        out.write(flipped)
    result, out = report_summary(pysample, changed, tmp)
    check(result.returncode == 0, "report of a damaged recording failed with %d" % result.returncode)
    check("block 2 at byte %d is damaged" % blocks[1][0] in result.stderr,
          "no line saying which block is damaged: %r" % result.stderr)

    other = os.path.join(tmp, "other.pysample")
    with open(other, "wb") as out:
        out.write(b"#!/bin/sh\necho hello\n" * 4)
    result, _ = report_summary(pysample, other, tmp)
    check(result.returncode == EXIT_BAD_INPUT and "is not a pysample recording" in result.stderr,
          "a file that is no recording: exit %d, %r" % (result.returncode, result.stderr))
    header = os.path.join(tmp, "header.pysample")
    with open(header, "wb") as out:
        out.write(data[:16])
    result, _ = report_summary(pysample, header, tmp)
    check(result.returncode == EXIT_BAD_INPUT and "holds no readable block" in result.stderr,
          "a header alone: exit %d, %r" % (result.returncode, result.stderr))
    result, _ = report_summary(pysample, os.path.join(tmp, "missing.pysample"), tmp)
    check(result.returncode == EXIT_BAD_INPUT, "a missing recording: exit %d" % result.returncode)

    # A full disk (/dev/full refuses every write): the recording says what it lost, the other output is written.
    stacks = os.path.join(tmp, "beside.txt")
    with Workload(python, "call_tree.py", 60) as running:
        result = run_pysample(pysample, ["record", "--pid", str(running.pid), "--duration", "1.5", "--format",
                                         "recording", "-o", "/dev/full", "-o", stacks])
    check(result.returncode == EXIT_OUTPUT_UNWRITABLE, "a recording to a full disk: exit %d" % result.returncode)
    check(re.search(r"the recording '/dev/full' could not be written whole: No space left on device; it holds the "
                    r"samples of the first [\d.]+ s, \d+ thread samples after them were lost", result.stderr),
          "no line saying what the full disk cost: %r" % result.stderr)
    check(parse_collapsed(stacks), "the other output was not written")


def test_filters(pysample, python, tmp):
    recording = os.path.join(tmp, "run.pysample")
    with Workload(python, "call_tree.py", 60) as running:
        result = run_pysample(pysample, ["record", "--pid", str(running.pid), "--duration", "3", "--rate", "200",
                                         "--idle", "--threads", "-o", recording])
        check(result.returncode == 0, "record failed with %d" % result.returncode)
    everything = parse_collapsed(report_summary(pysample, recording, tmp, "--threads")[1])
    # A thread root "thread TID (NAME)" parses as the function "thread TID" at the location NAME.
    roots = {frames[0][:2] for frames, _ in everything}
    worker_a = [root for root in roots if root[1] == "worker-a"]
    check(len(worker_a) == 1, "thread roots %r" % roots)
    tid = re.match(r"thread (\d+)$", worker_a[0][0]).group(1)
    for selector in ("worker-a", tid):
        kept = parse_collapsed(report_summary(pysample, recording, tmp, "--threads", "--thread", selector)[1])
        check(kept and {frames[0][:2] for frames, _ in kept} == {worker_a[0]},
              "--thread %s kept the threads %r" % (selector, {frames[0][:2] for frames, _ in kept}))
        check(sum(c for _, c in kept) == sum(c for f, c in everything if f[0][:2] == worker_a[0]),
              "--thread %s kept another count of samples than worker-a has" % selector)
    result, _ = report_summary(pysample, recording, tmp, "--process", "1")
    check(result.returncode == 0 and "holds 0 thread samples" in result.stderr,
          "--process of another pid: %r" % result.stderr)

    trace = os.path.join(tmp, "window.json")
    result = run_pysample(pysample, ["report", recording, "--from", "1", "--to", "2", "-o", trace])
    check(result.returncode == 0, "report --from --to failed with %d" % result.returncode)
    with open(trace) as source:
        events = json.load(source)
    events = events["traceEvents"] if isinstance(events, dict) else events
    times = [event["ts"] for event in events if event.get("ph") in ("B", "E", "X")]
    check(times, "no events in the window")
    check(1_000_000 <= min(times) and max(times) <= 2_000_000,
          "events from %d us to %d us, outside --from 1 --to 2" % (min(times), max(times)))

    # --cpu of a wall-clock recording: only the samples of running threads, fewer than every thread's.
    result, _ = report_summary(pysample, recording, tmp, "--cpu")
    running_only = re.search(r"holds (\d+) thread samples \(samples of running threads\)", result.stderr)
    every = re.search(r"holds (\d+) thread samples", report_summary(pysample, recording, tmp)[0].stderr)
    check(result.returncode == 0 and running_only and every and int(running_only.group(1)) < int(every.group(1)),
          "--cpu of a wall-clock recording: %r" % result.stderr)
    cpu_recording = os.path.join(tmp, "cpu.pysample")
    with Workload(python, "call_tree.py", 60) as running:
        run_pysample(pysample, ["record", "--pid", str(running.pid), "--duration", "0.5", "-o", cpu_recording])
    result, _ = report_summary(pysample, cpu_recording, tmp, "--idle")
    check(result.returncode == EXIT_USAGE and "recorded without --idle" in result.stderr,
          "--idle of a CPU-time recording: exit %d, %r" % (result.returncode, result.stderr))
    result, _ = report_summary(pysample, recording, tmp, "--gil")
    check(result.returncode == EXIT_USAGE and "recorded without --gil" in result.stderr,
          "--gil of a recording without it: exit %d, %r" % (result.returncode, result.stderr))


def node_shares(stacks, names):
    """Percentage of the samples whose stack has each of `names` (a function, matched by name)."""
    total = sum(count for _, count in stacks)
    return {name: 100.0 * sum(count for frames, count in stacks if any(f[0] == name for f in frames)) / total
            for name in names}


def run_checker(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    sys.stdout.write("$ %s  -> exit %d\n%s%s" % (" ".join(command), result.returncode, result.stdout, result.stderr))
    check(result.returncode == 0, "%s failed" % os.path.basename(command[1]))


def test_diff(pysample, python, tmp):
    base_recording, base_stacks, new_stacks = (os.path.join(tmp, name) for name in ("base.pysample", "base.txt",
                                                                                     "new.txt"))
    # a:b:c = 2:6:2, then 8:0:2: a grows from 20% to 80%, c stays at 20%, b is gone.
    for parts, outputs in ((("2", "6", "2"), ["-o", base_recording, "-o", base_stacks]), (("8", "0", "2"), ["-o", new_stacks])):
        with Workload(python, "shifting.py", 60, *parts) as running:
            # --idle: the one thread is in every sample, whatever CPU time a loaded machine leaves it.
            result = run_pysample(pysample, ["record", "--pid", str(running.pid), "--duration", "3", "--rate", "250",
                                             "--idle", "--nolineno"] + outputs)
            check(result.returncode == 0, "record failed with %d" % result.returncode)
    names = ["hot_a", "hot_b", "steady_c"]
    before, after = node_shares(parse_collapsed(base_stacks), names), node_shares(parse_collapsed(new_stacks), names)
    grew = after["hot_a"] - before["hot_a"]
    print("shares before %s, after %s" % (before, after))
    check(grew > 40, "hot_a grew by %.1f points, the workload makes it about 60" % grew)
    check(after["hot_b"] == 0 and before["hot_b"] > 40, "hot_b's shares %.1f%% and %.1f%%" % (before["hot_b"],
                                                                                              after["hot_b"]))
    svg = os.path.join(tmp, "diff.svg")
    result = run_pysample(pysample, ["diff", base_recording, new_stacks, "-o", svg])
    check(result.returncode == 0, "diff failed with %d" % result.returncode)
    browser = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "browser")
    run_checker(["node", os.path.join(browser, "diffgraph.mjs"), svg, "red:hot_a=%.2f" % grew, "white:steady_c",
                 "gone:hot_b"])
    run_checker(["node", os.path.join(browser, "flamegraph.mjs"), svg, "hot_a", "steady_c"])

    table = subprocess.run([pysample, "diff", "-q", "--format", "text", base_recording, new_stacks],
                           capture_output=True, text=True, timeout=60)
    check(table.returncode == 0, "diff --format text failed: %s" % table.stderr)
    rows = {}
    for line in table.stdout.splitlines():
        match = re.match(r"^\s*([\d.]+)%\s+([\d.]+)%\s+([+-][\d.]+)\s+([\d.]+)%\s+([\d.]+)%\s+([+-][\d.]+)  (\S+)",
                         line)
        if match:
            rows[match.group(7)] = float(match.group(6))
    check("hot_a" in rows and abs(rows["hot_a"] - grew) <= 0.011,
          "the table gives hot_a a total change of %s, the runs %.2f:\n%s" % (rows.get("hot_a"), grew, table.stdout))
    check(abs(rows.get("hot_b", 0) + before["hot_b"]) <= 0.011, "the table gives hot_b %s" % rows.get("hot_b"))
    first = next(line for line in table.stdout.splitlines() if re.match(r"^\s*[\d.]+%", line))
    check(first.split()[-2] in ("hot_a", "hot_b"), "the largest change is not first: %r" % first)


TESTS = {"identical": test_identical, "kill9": test_kill9, "damaged": test_damaged, "filters": test_filters,
         "diff": test_diff}


if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
