#!/usr/bin/env python3
"""End-to-end tests: run real Python workloads and check what pysample reports about them.

Usage: run_e2e.py --pysample BIN --python INTERPRETER TEST
       run_e2e.py --pysample BIN errors
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")


class Failure(Exception):
    pass


class Skip(Exception):
    """The test does not apply here (a module or tool missing): it exits with SKIP_CODE, which CTest
    reports as skipped."""


SKIP_CODE = 77


def check(condition, message):
    if not condition:
        raise Failure(message)


def markers(workload):
    """Line numbers of the '# @name' markers in a workload's source."""
    found = {}
    with open(os.path.join(WORKLOADS, workload)) as source:
        for number, line in enumerate(source, 1):
            match = re.search(r"# @(\w+)", line)
            if match:
                found[match.group(1)] = number
    return found


def parse_frame(text):
    match = re.match(r"^(.*) \((.*)\)$", text)
    if not match:
        return (text, None, None)
    function, location = match.groups()
    path, _, line = location.rpartition(":")
    if path and line.isdigit():
        return (function, path, int(line))
    return (function, location, None)


def parse_collapsed(path):
    stacks = []
    with open(path, encoding="utf-8") as profile:
        for line in profile:
            line = line.rstrip("\n")
            if not line:
                continue
            frames, _, count = line.rpartition(" ")
            check(count.isdigit(), "malformed collapsed line: %r" % line)
            stacks.append(([parse_frame(f) for f in frames.split(";")], int(count)))
    return stacks


def interpreter_command(python, workload):
    """The command that runs a workload with `python`, and the path the interpreter sees it at.

    A python given as ROOT::PATH runs inside the chroot ROOT, which is also what a container looks
    like to pysample; the workload is copied in (atomically: tests run in parallel).
    """
    source = os.path.join(WORKLOADS, workload)
    if "::" not in python:
        return [python, source], source
    root, inner_python = python.split("::", 1)
    target = os.path.join(root, "tmp", "pysample-workloads")
    os.makedirs(target, exist_ok=True)
    staged = os.path.join(target, ".%s.%d" % (workload, os.getpid()))
    shutil.copyfile(source, staged)
    os.replace(staged, os.path.join(target, workload))
    inner_path = "/tmp/pysample-workloads/" + workload
    return ["chroot", root, inner_python, inner_path], inner_path


class Workload:
    """A workload started directly (not by pysample), waited for until it prints 'ready'.

    Lines printed before 'ready' (at most `preamble` of them) are kept in self.preamble. With
    `executable`, the workload runs as `executable SOURCE ARGS` instead (a venv's python, a program
    embedding Python).
    """

    def __init__(self, python, name, *args, executable=None, preamble=0, preexec_fn=None):
        if executable is None:
            command, self.path = interpreter_command(python, name)
        else:
            self.path = os.path.join(WORKLOADS, name)
            command = [executable, self.path]
        self.proc = subprocess.Popen(command + [str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
        self.preamble = []
        line = self.proc.stdout.readline()
        while line.strip() != "ready" and line and len(self.preamble) < preamble:
            self.preamble.append(line.rstrip("\n"))
            line = self.proc.stdout.readline()
        check(line.strip() == "ready", "%s did not start: %r %s" % (name, line, self.proc.stderr.read()
                                                                     if self.proc.poll() is not None else ""))
        self.pid = self.proc.pid

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_pysample(pysample, args, timeout=60):
    started = time.time()
    result = subprocess.run([pysample] + args, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write("$ pysample %s  -> exit %d in %.1fs\n%s" % (" ".join(args), result.returncode,
                                                                 time.time() - started, result.stderr))
    return result


# Without stopping the threads, a caller's position is read a moment after the thread's innermost
# frame pointer: a call that returned in between leaves the caller at a line past the call in that
# sample, under the right functions (README, "Reading without stopping the target"). Tests of
# such recordings allow this share of samples, and at least TORN_LINE_SAMPLES samples, to show it.
TORN_LINE_SHARE = 0.05
TORN_LINE_SAMPLES = 10


def torn_line_allowance(total, share=TORN_LINE_SHARE):
    return 0 if share == 0 else max(int(share * total), TORN_LINE_SAMPLES)


def same_functions(frames, expected):
    """Whether two call chains name the same functions of the same files, whatever their lines."""
    return len(frames) == len(expected) and all(f[:2] == e[:2] for f, e in zip(frames, expected))


class TornLines:
    """Counts the samples whose call chain has the expected functions with a caller at another line.
    With `exact` (the threads were stopped) there may be none; otherwise up to torn_line_allowance()."""

    def __init__(self, exact):
        self.exact = exact
        self.torn = 0
        self.first = None

    def chain(self, frames, expected, count, what):
        if frames == expected:
            return
        check(not self.exact and same_functions(frames, expected),
              "wrong call chain for %s: %r, expected %r" % (what, frames, expected))
        self.torn += count
        self.first = self.first or frames

    def check(self, total):
        print("%d of %d samples with a caller at another line than the expected call%s" %
              (self.torn, total, ", the first: %r" % (self.first,) if self.first else ""))
        allowed = torn_line_allowance(total, 0 if self.exact else TORN_LINE_SHARE)
        check(self.torn <= allowed, "%d of %d samples with a caller at another line than the expected call, "
              "more than the %d allowed" % (self.torn, total, allowed))


def record(pysample, pid, tmp, *extra, duration=3):
    out = os.path.join(tmp, "profile.txt")
    result = run_pysample(pysample, ["record", "--pid", str(pid), "--duration", str(duration), "--format",
                                     "collapsed", "--output", out] + list(extra))
    check(result.returncode == 0, "pysample record failed with %d: %s" % (result.returncode, result.stderr))
    return parse_collapsed(out), result


def wait_until_asleep(pysample, pid, seconds=20):
    """Until every thread of a workload that printed 'ready' just before sleeping sleeps: a loaded
    machine may keep it from getting there for a while."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        result = run_pysample(pysample, ["dump", "--json", "--pid", str(pid)])
        if result.returncode == 0:
            threads = json.loads(result.stdout)["threads"]
            if threads and all(thread["idle"] for thread in threads):
                return
        time.sleep(0.05)
    check(False, "the workload's threads did not all go to sleep in %d s" % seconds)


# A loaded machine gives fewer samples in the same time: a test that needs a number of samples
# records again, twice as long each time, rather than fail on the machine's speed.
RECORD_ROUNDS = 4


def longer_until(run, enough, duration):
    """run(seconds) for `duration` seconds, then for twice as long, and so on (RECORD_ROUNDS runs at
    most), until enough(what it returned)."""
    for attempt in range(RECORD_ROUNDS):
        outcome = run(duration * 2 ** attempt)
        if enough(outcome):
            break
    return outcome


def record_until(pysample, pid, tmp, *extra, enough, duration=3):
    """record() for `duration` seconds, then for twice as long, and so on, until enough(stacks)."""
    return longer_until(lambda seconds: record(pysample, pid, tmp, *extra, duration=seconds),
                        lambda recorded: enough(recorded[0]), duration)


def worker_samples(stacks):
    """Samples of the 30/70 workload inside work_30 or work_70."""
    return sum(count for frames, count in stacks if frames[-1][0] in ("work_30", "work_70"))


def check_split(stacks, path, share=True, exact=False):
    """The 30/70 workload: the call chains with the right lines (`exact`: all of them, else all but a
    few caller lines), and (with `share`) the CPU split."""
    m = markers("split.py")
    chains = {
        "work_30": [("<module>", path, m["callmain"]), ("main", path, m["call30"])],
        "work_70": [("<module>", path, m["callmain"]), ("main", path, m["call70"])],
    }
    loop_line = {"work_30": m["loop30"], "work_70": m["loop70"]}
    body = {"work_30": range(m["loop30"] - 2, m["loop30"] + 2), "work_70": range(m["loop70"] - 2, m["loop70"] + 2)}
    counts = {"work_30": 0, "work_70": 0}
    on_loop = {"work_30": 0, "work_70": 0}
    total = 0
    torn = TornLines(exact)
    for frames, count in stacks:
        total += count
        leaf = frames[-1]
        for frame in frames:
            check(frame[1] == path, "unexpected frame %r in %r" % (frame, frames))
        if leaf[0] not in counts:
            check(leaf[0] == "main" or leaf[0] == "<module>", "unexpected leaf %r" % (leaf,))
            continue
        torn.chain(frames[:-1], chains[leaf[0]], count, leaf[0])
        check(leaf[2] in body[leaf[0]], "line %s outside %s" % (leaf[2], leaf[0]))
        counts[leaf[0]] += count
        if leaf[2] == loop_line[leaf[0]]:
            on_loop[leaf[0]] += count
    torn.check(total)
    both = counts["work_30"] + counts["work_70"]
    check(both >= 0.9 * total and both >= 30, "too few samples in the workers: %d of %d" % (both, total))
    for name in counts:
        check(on_loop[name] >= 0.9 * counts[name], "%s: only %d of %d samples on its loop line %d" %
              (name, on_loop[name], counts[name], loop_line[name]))
    work_30_share = counts["work_30"] / both
    print("work_30 share: %.3f (%d of %d samples)" % (work_30_share, counts["work_30"], both))
    if share:
        # 5 standard deviations of the count of work_30's samples, and its own timing's error: CPU
        # time gives fewer samples of a thread a loaded machine gives less CPU.
        allowed = 5 * (0.3 * 0.7 / both) ** 0.5 + 0.05
        check(abs(work_30_share - 0.3) <= allowed,
              "work_30 took %.1f%% of the %d samples, expected 30%% (within %.1f points)" %
              (100 * work_30_share, both, 100 * allowed))


def test_split(pysample, python, tmp, blocking=False):
    with Workload(python, "split.py", 30) as workload:
        extra = ["--blocking"] if blocking else []
        stacks, result = record_until(pysample, workload.pid, tmp, *extra,
                                      enough=lambda stacks: worker_samples(stacks) >= 30)
        check(workload.proc.poll() is None, "the workload died while being profiled")
        check_split(stacks, workload.path, exact=blocking)
        check("Top" in result.stderr or "%Own" in result.stderr, "no summary printed")
        check(re.search(r"\d+ samples in [\d.]+ s", result.stderr), "summary lacks the sample count")


def test_max_rate(pysample, python, tmp):
    """--rate max: thousands of samples a second, every one of them a call chain the workload makes,
    but for a few callers read a moment after their callee, at the line after the call."""
    with Workload(python, "split.py", 30) as workload:
        started = time.monotonic()
        stacks, result = record(pysample, workload.pid, tmp, "--rate", "max", "--idle", "-v", duration=2)
        ended = time.monotonic()
        # Wall-clock samples of a thread that the busy machine keeps descheduling: where its stalls fall
        # decides the split, which test_split checks at a normal rate. Here the chains are the point.
        check_split(stacks, workload.path, share=False)
    check("max rate asked" in result.stderr, "the summary does not say the maximum rate was asked")
    first = re.search(r"first sample at monotonic ([\d.]+) s", result.stderr)
    check(first and started < float(first.group(1)) < ended - 1.5,
          "the first sample's time is missing or outside the run: %s" % (first.group(0) if first else "none"))
    found = re.search(r"(\d+) samples in ([\d.]+) s", result.stderr)
    check(found and int(found.group(1)) >= 1000 * float(found.group(2)),
          "fewer than 1000 samples a second at --rate max: %s" % (found.group(0) if found else result.stderr))
    with Workload(python, "generators.py", 30) as workload:
        stacks, _ = record(pysample, workload.pid, tmp, "--rate", "max", "--idle", duration=2)
    check_generator_stacks(stacks, workload.path)


def function_shares(stacks, names):
    """{name: share of the samples whose innermost frame is that function} and the sample count."""
    total = sum(c for _, c in stacks)
    shares = {name: sum(c for frames, c in stacks if frames[-1][0] == name) / max(total, 1) for name in names}
    return shares, total


# How far apart a function's shares read with and without stopping the threads may be. A
# profile biased against short calls is off by 15 to 45 points here; separate windows of the
# same workload on a loaded 2-core machine differ by up to about 8.
SHORT_CALLS_TOLERANCE = 0.10
SHORT_CALLS_ENOUGH = 1000  # samples of each mode to stop at
SHORT_CALLS_LEAST = 500  # samples of each mode below which the shares say too little
SHORT_CALLS_MAX_ROUNDS = 6


def test_short_calls(pysample, python, tmp):
    """Reading without stopping the threads must not bias the profile against short calls: a loop
    spends about a third of its time in its own code, a third in calls of a few microseconds and a
    third in a generator resumed as often. Each function's share of the samples, read without
    stopping the target, is within a few points of its share read with the threads stopped
    (--blocking), which is exact."""
    names = ("caller", "short_call", "values")
    shares = {}
    recorded = {"non-blocking": [], "--blocking": []}
    totals = {}
    with Workload(python, "short_calls.py", 90, 1000) as workload:
        # Windows of each, alternating, so that a drift of the workload's own split over time (a
        # loaded machine) weighs on both alike, until both have enough samples: a loaded machine
        # stops the threads less often.
        for round in range(SHORT_CALLS_MAX_ROUNDS):
            for extra in ([], ["--blocking"]):
                stacks, _ = record(pysample, workload.pid, tmp, "--rate", "1000", "--idle", *extra, duration=2)
                recorded[" ".join(extra) or "non-blocking"] += stacks
            for mode, stacks in recorded.items():
                shares[mode], totals[mode] = function_shares(stacks, names)
            if round >= 1 and min(totals.values()) >= SHORT_CALLS_ENOUGH:
                break
        check(workload.proc.poll() is None, "the workload died while being profiled")
    for mode, total in totals.items():
        check(total >= SHORT_CALLS_LEAST, "only %d samples %s in %d windows" % (total, mode, SHORT_CALLS_MAX_ROUNDS))
    blocking, running = shares["--blocking"], shares["non-blocking"]
    # Four standard errors of the difference of two shares over these sample counts; never as wide
    # as the bias this test is for.
    spread = {name: 4 * math.sqrt(blocking[name] * (1 - blocking[name]) *
                                  (1 / totals["--blocking"] + 1 / totals["non-blocking"])) for name in names}
    tolerance = {name: min(0.14, max(SHORT_CALLS_TOLERANCE, spread[name])) for name in names}
    print("innermost-function shares, stopped: %s; running: %s" %
          (", ".join("%s %.1f%%" % (n, 100 * blocking[n]) for n in names),
           ", ".join("%s %.1f%%" % (n, 100 * running[n]) for n in names)))
    for name in names:
        check(blocking[name] >= 0.15, "%s has only %.1f%% of the samples with --blocking" % (name, 100 * blocking[name]))
        check(abs(running[name] - blocking[name]) <= tolerance[name],
              "%s: %.1f%% of the samples read without stopping the threads, %.1f%% with them stopped" %
              (name, 100 * running[name], 100 * blocking[name]))


def test_split_blocking(pysample, python, tmp):
    test_split(pysample, python, tmp, blocking=True)


def test_threads(pysample, python, tmp):
    m = markers("threads.py")
    with Workload(python, "threads.py", 30) as workload:
        stacks, _ = record(pysample, workload.pid, tmp, "--threads")
    per_function = {}
    thread_roots = set()
    total = 0
    for frames, count in stacks:
        total += count
        root = frames[0]
        check(root[0].startswith("thread "), "missing thread root in %r" % (frames,))
        thread_roots.add(root[0])
        names = [f[0] for f in frames[1:]]
        for busy in ("busy_alpha", "busy_beta", "busy_gamma"):
            if busy in names:
                index = names.index(busy)
                check(frames[1 + index][2] == m[busy.split("_")[1]], "wrong line for %s: %r" % (busy, frames))
                per_function[busy] = per_function.get(busy, 0) + count
    print("samples per busy function:", per_function, "threads:", sorted(thread_roots))
    for busy in ("busy_alpha", "busy_beta", "busy_gamma"):
        check(per_function.get(busy, 0) >= 0.05 * total, "%s has %d of %d samples" %
              (busy, per_function.get(busy, 0), total))
    check(len(thread_roots) >= 3, "expected at least 3 threads, saw %r" % thread_roots)


def test_launch(pysample, python, tmp):
    out = os.path.join(tmp, "launch.txt")
    command, script = interpreter_command(python, "exit_code.py")
    # --idle: every sample counts the thread, however little CPU a loaded machine gives it.
    result = run_pysample(pysample, ["record", "-f", "collapsed", "--idle", "-o", out, "--"] + command + ["1.5", "7"])
    check(result.returncode == 7, "pysample returned %d, expected the child's exit code 7" % result.returncode)
    m = markers("exit_code.py")
    stacks = parse_collapsed(out)
    body = range(m["burnfirst"], m["burnlast"] + 1)
    burn = sum(c for frames, c in stacks if len(frames) == 2 and frames[0] == ("<module>", script, m["callburn"])
               and frames[1][:2] == ("burn", script) and frames[1][2] in body)
    total = sum(c for _, c in stacks)
    check(burn >= 0.8 * total and burn >= 20, "burn() seen in %d of %d samples:\n%s" % (burn, total, open(out).read()))


def dump_traceback(pysample, pid):
    """`pysample dump` of a single-threaded process: its frames, outermost first, as (function, path, line)."""
    result = run_pysample(pysample, ["dump", "--pid", str(pid)])
    print(result.stdout)
    check(result.returncode == 0, "dump failed with %d" % result.returncode)
    lines = [line.strip() for line in result.stdout.splitlines()]
    check(any(line.startswith("Thread %d " % pid) and line.endswith("(idle):") for line in lines),
          "main thread %d not listed as idle" % pid)
    start = lines.index("Traceback (most recent call last):") if "Traceback (most recent call last):" in lines else -1
    check(start >= 0, "no traceback printed")
    frames = []
    for line in lines[start + 1:]:
        match = re.match(r'^File "(.*)", line (\d+), in (.*)$', line)
        if not match:
            break
        frames.append((match.group(3), match.group(1), int(match.group(2))))
    return frames, lines[start + 1:start + 1 + len(frames)]


def check_dump_sleeper(pysample, workload):
    """The sleeper workload's exact traceback, as `pysample dump` prints it."""
    m = markers("sleeper.py")
    time.sleep(0.2)
    path = workload.path
    expected = [
        'File "%s", line %d, in <module>' % (path, m["callouter"]),
        'File "%s", line %d, in outer' % (path, m["callinner"]),
        'File "%s", line %d, in inner' % (path, m["sleep"]),
    ]
    _, printed = dump_traceback(pysample, workload.pid)
    check(printed[:3] == expected, "dump printed %r, expected %r" % (printed[:3], expected))


def test_dump(pysample, python, tmp):
    with Workload(python, "sleeper.py", 30) as workload:
        check_dump_sleeper(pysample, workload)


def test_idle(pysample, python, tmp):
    """A thread sleeping in time.sleep is dropped by default and kept, with its exact stack, with --idle."""
    m = markers("sleeper.py")
    with Workload(python, "sleeper.py", 30) as workload:
        wait_until_asleep(pysample, workload.pid)  # 'ready' is printed just before the sleep starts
        stacks, _ = record(pysample, workload.pid, tmp, duration=1)
        check(sum(c for _, c in stacks) == 0, "idle thread sampled without --idle: %r" % stacks)
        stacks, _ = record(pysample, workload.pid, tmp, "--idle", duration=1)
        wall, _ = record(pysample, workload.pid, tmp, "--mode", "wall", duration=1)
    check(sum(c for _, c in wall) >= 50, "--mode wall left out the idle thread: %r" % wall)
    path = workload.path
    expected = [("<module>", path, m["callouter"]), ("outer", path, m["callinner"]), ("inner", path, m["sleep"])]
    total = sum(c for _, c in stacks)
    check(total >= 50, "only %d idle samples with --idle" % total)
    check(all(frames == expected for frames, _ in stacks), "--idle stacks %r, expected %r" % (stacks, expected))


def test_stop(pysample, python, tmp):
    """SIGINT, SIGTERM (while holding the threads with --blocking) and the target exiting all still
    write the profile, and leave the target untraced."""
    def status_field(pid, name):
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith(name + ":"):
                    return line.split()[1]
        return None

    with Workload(python, "split.py", 30) as workload:
        for sig, extra in ((signal.SIGINT, []), (signal.SIGTERM, ["--blocking"])):
            out = os.path.join(tmp, "stop-%d.txt" % sig)
            proc = subprocess.Popen([pysample, "record", "--pid", str(workload.pid), "-o", out, "-q", "--idle"] + extra)
            time.sleep(1.5)
            proc.send_signal(sig)
            check(proc.wait(timeout=30) == 0, "pysample exited with %d after signal %d" % (proc.returncode, sig))
            check(os.path.exists(out), "no profile written after signal %d" % sig)
            samples = sum(c for _, c in parse_collapsed(out))
            check(samples >= 20, "only %d samples written after signal %d" % (samples, sig))
            check(status_field(workload.pid, "TracerPid") == "0", "target still traced after signal %d" % sig)
            check(workload.proc.poll() is None, "target died after signal %d" % sig)

    # Launch mode: SIGINT to pysample alone is passed on to the child, whose status pysample returns.
    out = os.path.join(tmp, "launched.txt")
    command = interpreter_command(python, "split.py")[0]
    proc = subprocess.Popen([pysample, "record", "-o", out, "-q", "--idle", "--"] + command + ["30"], stdout=subprocess.DEVNULL)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    check(code == 130, "launch mode after SIGINT: exit %d, expected 130 (the child's SIGINT)" % code)
    samples = sum(c for _, c in parse_collapsed(out))
    check(samples >= 20, "launch mode after SIGINT: only %d samples written" % samples)

    with Workload(python, "split.py", 1) as workload:
        out = os.path.join(tmp, "exited.txt")
        # --idle: every sample counts the thread, however little CPU a loaded machine gives it.
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "--idle", "-o", out])
        check(result.returncode == 0, "exit %d when the target exited" % result.returncode)
        check("exited" in result.stderr, "no word that the target exited")
        samples = sum(c for _, c in parse_collapsed(out))
        check(samples >= 30, "only %d samples written when the target exited" % samples)


def test_stripped(pysample, python, tmp):
    """Before 3.7 the interpreter list is found through the local symbol interp_head: with the
    symbol table stripped from libpython, pysample says so in one line instead of waiting or
    misreading."""
    ldd = subprocess.run(["ldd", python], capture_output=True, text=True).stdout
    match = re.search(r"(\S*libpython[\d.]+\w*\.so[.\d]*) => (\S+)", ldd)
    check(match, "%s does not link a shared libpython:\n%s" % (python, ldd))
    stripped = os.path.join(tmp, match.group(1))
    subprocess.run(["strip", "--strip-all", "-o", stripped, match.group(2)], check=True)
    env = dict(os.environ, LD_LIBRARY_PATH=tmp)
    target = subprocess.Popen([python, "-c", "import sys, time; sys.stdout.write('ready\\n'); "
                               "sys.stdout.flush(); time.sleep(30)"], stdout=subprocess.PIPE, env=env)
    try:
        check(target.stdout.readline().strip() == b"ready", "the target did not start")
        with open("/proc/%d/maps" % target.pid) as maps:
            check(stripped in maps.read(), "the target does not use the stripped %s" % stripped)
        result = run_pysample(pysample, ["dump", "--pid", str(target.pid)])
        check(result.returncode == 6, "stripped libpython: exit %d, expected 6" % result.returncode)
        check(len(result.stderr.strip().splitlines()) == 1 and "stripped" in result.stderr
              and "interp_head" in result.stderr, "stripped libpython: expected one clear line, got %r"
              % result.stderr)
    finally:
        target.kill()
        target.wait()
    started = time.time()
    result = subprocess.run([pysample, "record", "-o", os.path.join(tmp, "x.txt"), "--", python, "-c",
                             "import time; time.sleep(20)"], capture_output=True, text=True, timeout=60, env=env)
    check(result.returncode == 6 and "stripped" in result.stderr and time.time() - started < 10,
          "launch mode with a stripped libpython: exit %d after %.1fs, %r" %
          (result.returncode, time.time() - started, result.stderr))


def python_version(python):
    """(major, minor) of an interpreter (plain path or ROOT::PATH)."""
    command = interpreter_command(python, "sleeper.py")[0][:-1]
    out = subprocess.run(command + ["-c", "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=30).stdout
    major, minor = out.split(".")
    return int(major), int(minor)


def check_generator_stacks(stacks, path, exact=False):
    """generators.py: gen under its caller chain (`exact`: with every line right, else all but a few
    caller lines), mostly on its loop line."""
    m = markers("generators.py")
    chain = [("<module>", path, m["callmain"]), ("main", path, m["callconsume"]), ("consume", path, m["callgen"])]
    body = range(m["genloop"] - 3, m["genloop"] + 2)
    total = in_gen = on_loop = 0
    torn = TornLines(exact)
    for frames, count in stacks:
        total += count
        for frame in frames:
            check(frame[1] == path, "unexpected frame %r in %r" % (frame, frames))
        names = [f[0] for f in frames]
        if "gen" in names:
            check(names[-1] == "gen", "gen is not the leaf in %r" % (frames,))
            torn.chain(frames[:-1], chain, count, "gen")
            check(frames[-1][2] in body, "gen at line %s, outside its body %r" % (frames[-1][2], body))
            in_gen += count
            on_loop += count if frames[-1][2] == m["genloop"] else 0
        else:  # consume between two values, or main about to call it
            check(frames[-1][:2] == chain[len(frames) - 1][:2], "unexpected stack %r" % (frames,))
            torn.chain(frames[:-1], chain[:len(frames) - 1], count, frames[-1][0])
    torn.check(total)
    print("generator: %d of %d samples in gen, %d on its loop line" % (in_gen, total, on_loop))
    check(on_loop >= 0.8 * total and on_loop > 80, "gen's loop line %d has %d of %d samples" %
          (m["genloop"], on_loop, total))


def test_generators(pysample, python, tmp):
    """Hot code in a generator's body (all versions), and in a coroutine awaited by a coroutine that
    asyncio runs (3.6+): each frame under its exact caller chain, with its lines."""
    # Wall-clock time: every sample of the busy thread, however little CPU a loaded machine gives it.
    with Workload(python, "generators.py", 30) as workload:
        stacks, _ = record(pysample, workload.pid, tmp, "--idle", duration=2)
        check(workload.proc.poll() is None, "the generator workload died while being profiled")
    check_generator_stacks(stacks, workload.path)

    version = python_version(python)
    if version < (3, 6):
        print("skipped the coroutine part on %d.%d: no async def" % version)
        return
    m = markers("coroutines.py")
    with Workload(python, "coroutines.py", 30) as workload:
        stacks, _ = record(pysample, workload.pid, tmp, "--idle", duration=2)
        check(workload.proc.poll() is None, "the coroutine workload died while being profiled")
    path = workload.path
    module = ("<module>", path, m["callrun"] if version >= (3, 7) else m["callrun36"])
    expected = [module, ("driver", path, m["awaitcrunch"]), ("crunch", path, m["coroloop"])]
    body = range(m["coroloop"] - 2, m["coroloop"] + 2)
    total = in_crunch = on_loop = 0
    torn = TornLines(exact=False)
    for frames, count in stacks:
        total += count
        names = [f[0] for f in frames]
        check(frames[0] == module, "stack not rooted at %r: %r" % (module, frames))
        check(any(n.split(".")[-1] == "run_until_complete" for n in names), "no asyncio event loop frames in %r" % (frames,))
        if "crunch" not in names:
            continue
        ours = [f for f in frames if f[1] == path]
        check(len(ours) == 3 and ours[-1][:2] == expected[2][:2], "workload frames %r, expected %r" % (ours, expected))
        torn.chain(ours[:2], expected[:2], count, "crunch")
        check(frames[-2][:2] == expected[1][:2], "crunch's caller is not driver directly: %r" % (frames,))
        check(frames[-1][2] in body, "crunch at line %s, outside its body" % frames[-1][2])
        in_crunch += count
        on_loop += count if frames[-1][2] == m["coroloop"] else 0
    torn.check(total)
    print("coroutine: %d of %d samples in crunch, %d on its loop line" % (in_crunch, total, on_loop))
    check(on_loop >= 0.6 * total and on_loop > 60, "crunch's loop line %d has %d of %d samples" %
          (m["coroloop"], on_loop, total))


def test_lineno(pysample, python, tmp):
    """Every frame's line, from `dump` and from `record --idle`, is the f_lineno the interpreter
    itself reports from the same call sites (a long function, a multi-line call, a generator)."""
    with Workload(python, "lineno.py", 30, preamble=1) as workload:
        check(len(workload.preamble) == 1, "lineno.py printed no frame lines before 'ready'")
        path = workload.path
        expected = [(name, path, line) for name, line in json.loads(workload.preamble[0])]
        print("interpreter-reported frames:", expected)
        check([f[0] for f in expected] == ["<module>", "main", "middle", "stepper", "leaf"],
              "unexpected frames from the interpreter: %r" % expected)
        check(expected[-1][2] > 300, "the leaf line %d should be beyond 300" % expected[-1][2])
        wait_until_asleep(pysample, workload.pid)
        frames, _ = dump_traceback(pysample, workload.pid)
        check(frames == expected, "dump reported %r, the interpreter %r" % (frames, expected))
        stacks, _ = record(pysample, workload.pid, tmp, "--idle", duration=1)
        wall, _ = record(pysample, workload.pid, tmp, "--mode", "wall", duration=1)
    check(sum(c for _, c in wall) >= 50, "--mode wall left out the idle thread: %r" % wall)
    total = sum(c for _, c in stacks)
    check(total >= 50, "only %d idle samples with --idle" % total)
    for frames, _ in stacks:
        check(frames == expected, "record --idle reported %r, the interpreter %r" % (frames, expected))


def test_venv(pysample, python, tmp):
    """A virtualenv's bin/python, both a symlink and a copy: version detected, stacks read."""
    version = python_version(python)
    if version < (3, 3):
        print("skipped: no venv module in %d.%d" % version)
        return
    for mode in ("symlinks", "copies"):
        env = os.path.join(tmp, "venv-" + mode)
        subprocess.run([python, "-m", "venv", "--without-pip", "--" + mode, env], check=True, timeout=60)
        executable = os.path.join(env, "bin", "python")
        check(os.path.islink(executable) == (mode == "symlinks"), "%s: %s is%s a symlink" %
              (mode, executable, "" if os.path.islink(executable) else " not"))
        with Workload(python, "split.py", 30, executable=executable) as workload:
            exe = os.readlink("/proc/%d/exe" % workload.pid)
            print("%s: the workload runs %s" % (mode, exe))
            if mode == "copies":
                check(exe.startswith(env), "the copied venv python is not what runs: %s" % exe)
            stacks, result = record_until(pysample, workload.pid, tmp,
                                          enough=lambda stacks: worker_samples(stacks) >= 30)
            check(workload.proc.poll() is None, "the workload died while being profiled")
        check(re.search(r"\(Python %d\.%d(\.\d+)?\)" % version, result.stderr), "%s: version %d.%d not detected" % ((mode,) + version))
        check_split(stacks, workload.path)


def test_embedded(pysample, python, tmp):
    """A C program embedding libpython (built now with pythonX.Y-config --embed), whose executable is
    not called python: record and dump read it."""
    version = python_version(python)
    config = os.path.join(os.path.dirname(python), "python%d.%d-config" % version)
    check(os.access(config, os.X_OK), "no %s" % config)
    flags = subprocess.run([config, "--cflags", "--embed", "--ldflags"], capture_output=True, text=True,
                           check=True).stdout.split()
    prefix = subprocess.run([config, "--prefix"], capture_output=True, text=True, check=True).stdout.strip()
    host = os.path.join(tmp, "embedhost")
    command = ["gcc", "-o", host, os.path.join(HERE, "embed", "embed.c")] + flags + \
        ["-Wl,-rpath," + os.path.join(prefix, "lib")]
    print("$ " + " ".join(command))
    subprocess.run(command, check=True, timeout=120)
    with Workload(python, "split.py", 30, executable=host) as workload:
        check(os.readlink("/proc/%d/exe" % workload.pid) == host, "the embedding program is not what runs")
        stacks, result = record_until(pysample, workload.pid, tmp, enough=lambda stacks: worker_samples(stacks) >= 30)
        check(workload.proc.poll() is None, "the embedding program died while being profiled")
    check(re.search(r"\(Python %d\.%d(\.\d+)?\)" % version, result.stderr), "version %d.%d not detected" % version)
    check_split(stacks, workload.path)
    with Workload(python, "sleeper.py", 30, executable=host) as workload:
        check_dump_sleeper(pysample, workload)


def native_stacks_sampled(stderr):
    match = re.search(r"native stacks: \d+ of (\d+) merged", stderr)
    return int(match.group(1)) if match else 0


def record_native(pysample, pid, tmp, duration=4):
    """record --native --idle at 200 Hz until at least 50 native stacks were read (a loaded machine
    reads fewer in the same time)."""
    return longer_until(lambda seconds: record(pysample, pid, tmp, "--native", "--idle", "--rate", "200",
                                               duration=seconds),
                        lambda recorded: native_stacks_sampled(recorded[1].stderr) >= 50, duration)


def native_merge_rate(python, stderr):
    """The summary's count of native stacks merged with their Python frames: from 3.8, all but 1%,
    and but the threads that a loaded machine did not let stop in time (read without stopping them,
    their native and Python frames may disagree), which the summary counts."""
    match = re.search(r"native stacks: (\d+) of (\d+) merged", stderr)
    check(match, "no native-stack summary in: %s" % stderr)
    merged, total = int(match.group(1)), int(match.group(2))
    check(total >= 50, "only %d native stacks sampled" % total)
    late = re.search(r"(\d+) times? a thread did not stop within", stderr)
    unreadable = re.search(r"(\d+) registers unreadable", stderr)
    late = max(int(late.group(1)) if late else 0, int(unreadable.group(1)) if unreadable else 0)
    rate = 100.0 * merged / total
    print("native merge rate: %d of %d stacks (%.2f%%) on Python %d.%d; %d late stops" %
          ((merged, total, rate) + python_version(python) + (late,)))
    if python_version(python) >= (3, 8):
        check(total - merged <= 0.01 * total + late, "only %.2f%% of native stacks merged (all but 1%% and the %d "
                                                    "read without stopping expected)" % (rate, late))
    return total - merged


def is_python_frame(frame):
    return frame[1] is not None and frame[1].endswith(".py")


def check_interleaving(stacks, path, python_chain, native_between, unmerged):
    """Stacks that reach the innermost function of `python_chain` ((function, line or None)..., root
    first): exactly those Python frames in order, and native frames between the last two whose
    functions match each regex of `native_between` in that order. Stacks without native frames are
    the ones that could not be merged; there are no more of them than the summary says."""
    leaf = python_chain[-1][0]
    reaching = [(frames, count) for frames, count in stacks if any(f[0] == leaf and f[1] == path for f in frames)]
    check(reaching, "no stack reaches %s: %r" % (leaf, stacks[:3]))
    python_only = 0
    for frames, count in reaching:
        python = [(f[0], f[2]) for f in frames if is_python_frame(f)]
        check(len(python) >= len(python_chain) and
              all(name == want and (line is None or got == line)
                  for (name, got), (want, line) in zip(python, python_chain)),
              "Python frames %r, expected %r" % (python, python_chain))
        if all(is_python_frame(f) for f in frames):
            python_only += count
            example = frames
            continue
        check(is_python_frame(frames[0]), "native frames below the outermost Python frame: %r" % frames)
        caller = max(i for i, f in enumerate(frames) if f[0] == python_chain[-2][0] and is_python_frame(f))
        callee = min(i for i, f in enumerate(frames) if f[0] == leaf and is_python_frame(f) and i > caller)
        between = frames[caller + 1:callee]
        check(between and not any(is_python_frame(f) for f in between),
              "no native frames between %s and %s: %r" % (python_chain[-2][0], leaf, frames))
        position = 0
        for pattern in native_between:
            found = [i for i, f in enumerate(between) if i >= position and re.search(pattern, f[0])]
            check(found, "no native frame matching %r (in order) between %s and %s: %r" %
                  (pattern, python_chain[-2][0], leaf, between))
            position = found[0] + 1
    total = sum(c for _, c in reaching)
    print("%d of %d samples in %s have native frames in place" % (total - python_only, total, leaf))
    check(total - python_only > 0, "no merged sample reaches %s" % leaf)
    check(python_only <= unmerged,
          "%d Python-only samples, more than the unmerged stacks, e.g. %r" % (python_only, python_only and example))


def process_roots(stacks):
    """{pid: samples} of the `process <pid> <command line>` root frames."""
    roots = {}
    for frames, count in stacks:
        match = re.match(r"^process (\d+) ", frames[0][0])
        check(match, "stack without a process root: %r" % frames[:2])
        roots[int(match.group(1))] = roots.get(int(match.group(1)), 0) + count
    return roots


def test_subprocesses(pysample, python, tmp):
    """A multiprocessing pool: the workers, found as they start, appear under their own process
    roots with the function they run."""
    m = markers("pool.py")
    with Workload(python, "pool.py") as workload:
        stacks, result = record(pysample, workload.pid, tmp, "--subprocesses", duration=4)
    roots = process_roots(stacks)
    print("samples per process: %r" % roots)
    workers = {pid for pid in roots if pid != workload.pid}
    busy = set()
    for frames, _ in stacks:
        pid = int(frames[0][0].split()[1])
        if any(f[0] == "worker_task" and f[1] == workload.path and f[2] == m["task"] for f in frames):
            busy.add(pid)
    check(len(busy & workers) >= 2, "worker_task seen in processes %r; workers %r" % (sorted(busy), sorted(workers)))
    check(workload.pid not in busy, "worker_task under the parent process")
    check(re.search(r"sampled [3-9] Python processes", result.stderr), "fewer than 3 processes sampled")


def test_subprocesses_launcher(pysample, python, tmp):
    """A launcher that is not Python (sh) starting the interpreter: followed through the exec."""
    command, path = interpreter_command(python, "split.py")
    out = os.path.join(tmp, "profile.txt")
    shell = "exec " + " ".join("'%s'" % part for part in command + ["3"])
    result = run_pysample(pysample, ["record", "--subprocesses", "--format", "collapsed", "--output", out, "--",
                                     "sh", "-c", "sleep 0.2; " + shell], timeout=90)
    check(result.returncode == 0, "pysample record failed with %d" % result.returncode)
    stacks = parse_collapsed(out)
    roots = process_roots(stacks)
    print("samples per process: %r" % roots)
    functions = {f[0] for frames, _ in stacks for f in frames}
    check({"work_30", "work_70"} <= functions, "split.py's functions missing: %r" % sorted(functions)[:20])


def test_native_qsort(pysample, python, tmp):
    """Python -> ctypes -> libc qsort -> callback -> Python: the C frames sit between the Python
    frames that call them and that they call, in order."""
    m = markers("native_qsort.py")
    with Workload(python, "native_qsort.py") as workload:
        stacks, result = record_native(pysample, workload.pid, tmp)
    unmerged = native_merge_rate(python, result.stderr)
    chain = [("<module>", m["callmain"]), ("main", m["callsort"]), ("sort_with_qsort", m["qsort"]),
             ("py_compare", None)]
    check_interleaving(stacks, workload.path, chain, [r"^ffi_call", r"qsort|msort"], unmerged)
    check(not any(f[0].startswith("_PyEval_EvalFrame") for frames, _ in stacks for f in frames),
          "the interpreter's evaluation function left in place of Python frames")


def build_cxx_extension(python, tmp):
    """Builds tests/e2e/native/cxxwork.cpp against `python`'s headers; returns the directory to
    import it from, as the interpreter sees it."""
    root = python.split("::", 1)[0] if "::" in python else ""
    command, _ = interpreter_command(python, "sleeper.py")
    query = ("import sysconfig; p = sysconfig.get_paths(); print(p['include']); print(p['platinclude'])")
    paths = subprocess.run(command[:-1] + ["-c", query], capture_output=True, text=True, check=True)
    includes = [root + line for line in paths.stdout.split()]
    check(any(os.path.exists(os.path.join(d, "Python.h")) for d in includes),
          "no Python.h for %s in %r (install the interpreter's -dev package)" % (python, includes))
    if root:
        inner = os.path.join("/tmp", "pysample-workloads", "cxx-%d" % os.getpid())
        outdir = root + inner
    else:
        inner = outdir = os.path.join(tmp, "cxx")
    os.makedirs(outdir, exist_ok=True)
    compile_command = ["g++", "-shared", "-fPIC", "-O1", "-g", "-o", os.path.join(outdir, "cxxwork.so"),
                       os.path.join(HERE, "native", "cxxwork.cpp")] + ["-I" + d for d in includes]
    if root:
        # Debian's pyconfig.h includes the multiarch one relative to /usr/include.
        compile_command += ["-idirafter", os.path.join(root, "usr", "include")]
    print("$ " + " ".join(compile_command))
    subprocess.run(compile_command, check=True, timeout=120)
    return inner, outdir


def test_native_cxx(pysample, python, tmp):
    """A C++ extension module (namespaces, templates) between Python frames, with demangled names."""
    m = markers("native_cxx.py")
    inner, outdir = build_cxx_extension(python, tmp)
    try:
        with Workload(python, "native_cxx.py", inner) as workload:
            stacks, result = record_native(pysample, workload.pid, tmp)
    finally:
        if outdir != inner:
            shutil.rmtree(outdir, ignore_errors=True)
    unmerged = native_merge_rate(python, result.stderr)
    chain = [("<module>", m["calldrive"]), ("drive", m["run"]), ("callback", None)]
    check_interleaving(stacks, workload.path, chain, [r"^pysample_test::detail::Accumulator<long>::fold\("], unmerged)
    spin = r"^pysample_test::detail::Accumulator<long>::spin\(long\)$"
    in_spin = [frames for frames, _ in stacks if re.search(spin, frames[-1][0])]
    check(in_spin, "no sample in the C++ leaf function; leaves: %r" % sorted({f[-1][0] for f, _ in stacks}))
    check(all(re.search(r"Accumulator<long>::fold\(", frames[-2][0]) and frames[-2][1].endswith("cxxwork.cpp")
              for frames in in_spin), "spin() not called from fold() (with its source file): %r" % in_spin[0])
    check(all(("drive", m["run"]) in [(f[0], f[2]) for f in frames] for frames in in_spin),
          "the C++ frames are not under drive(): %r" % in_spin[0])


def test_native_clock(pysample, python, tmp):
    """Samples taken inside the vDSO (time.time() -> clock_gettime), which has no file on disk,
    unwind and merge like any other."""
    m = markers("native_clock.py")
    with Workload(python, "native_clock.py") as workload:
        stacks, result = record_native(pysample, workload.pid, tmp)
    native_merge_rate(python, result.stderr)
    in_vdso = [(frames, count) for frames, count in stacks if frames[-1][1] and frames[-1][1].startswith("[vdso]")]
    total = sum(c for _, c in stacks)
    print("%d of %d samples in the vDSO" % (sum(c for _, c in in_vdso), total))
    check(in_vdso, "no sample in the vDSO; leaves: %r" % sorted({f[-1] for f, _ in stacks})[:20])
    for frames, _ in in_vdso:
        python = [(f[0], f[2]) for f in frames if is_python_frame(f)]
        check(python == [("<module>", m["callclock"]), ("read_clock", m["clock"])],
              "vDSO sample under the wrong Python frames: %r" % frames)


def test_native_blocked(pysample, python, tmp):
    """Threads blocked in system calls show the libc call at the top with `dump --native`, and
    `--native-all` adds the start-up frames below the Python ones."""
    m = markers("native_blocked.py")
    with Workload(python, "native_blocked.py") as workload:
        time.sleep(0.3)
        # A thread that a loaded machine does not let stop in time is shown without its native frames,
        # and said so: dumped again, as a user would.
        for _ in range(5):
            result = run_pysample(pysample, ["dump", "--native", "--pid", str(workload.pid)])
            if "registers unreadable" not in result.stdout:
                break
        everything = run_pysample(pysample, ["dump", "--native-all", "--pid", str(workload.pid)])
    print(result.stdout)
    check(result.returncode == 0, "dump --native failed with %d" % result.returncode)
    threads = result.stdout.split("\nThread ")[1:]
    check(len(threads) == 2, "expected 2 threads in: %s" % result.stdout)
    expectations = [("sleep_in_main", m["sleep"], r"nanosleep|select"), ("wait_in_select", m["select"], r"select")]
    for function, line, syscall in expectations:
        thread = [t for t in threads if 'line %d, in %s' % (line, function) in t]
        check(thread, "no thread in %s at line %d" % (function, line))
        lines = [l.strip() for l in thread[0].splitlines() if l.strip()]
        position = max(i for i, l in enumerate(lines) if l.startswith("File "))
        check(lines[position].endswith("line %d, in %s" % (line, function)), "innermost Python frame: %r" % lines)
        above = lines[position + 1:]
        check(above and all(l.startswith("[native] ") for l in above), "no native frames above %s: %r" % (function, lines))
        # libc's own system-call helpers may sit above the call (unnamed without libc's symbols).
        calls = [i for i, l in enumerate(above) if re.search(syscall, l)]
        check(calls, "no %s call above the Python frame: %r" % (syscall, above))
        check(all(re.search(r"\(libc\.so\.6\+|libc\.so\.6\+0x[0-9a-f]+ \(libc\.so\.6\)|sysdeps/|nptl/", l)
                  for l in above[calls[-1] + 1:]),
              "frames above the %s call that are not libc's: %r" % (syscall, above))
    print(everything.stdout)
    check(everything.returncode == 0, "dump --native-all failed with %d" % everything.returncode)
    startup = re.compile(r"\[native\] (_start|__libc_start_main|Py_BytesMain|Py_Main|main|start_thread|clone3?) ")
    check(startup.search(everything.stdout), "--native-all shows no start-up frames")
    check(not startup.search(result.stdout), "--native shows start-up frames")


ROOT = os.path.dirname(os.path.dirname(HERE))
SYSTEM_PYTHON = "/usr/bin/python3"


def run_checker(command):
    """Runs one format's checker (a viewer in headless Chromium, or Python's own pstats)."""
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    sys.stdout.write("$ %s  -> exit %d in %.1fs\n%s%s" % (" ".join(command), result.returncode,
                                                          time.time() - started, result.stdout, result.stderr))
    check(result.returncode == 0, "%s failed" % os.path.basename(command[1]))


def test_formats(pysample, python, tmp):
    """One recording written in every format at once (each -o picks its format by suffix), then each
    file opened where people open it."""
    base = os.path.join(tmp, "split")
    files = {
        "flamegraph": base + ".svg",
        "collapsed": base + ".txt",
        "speedscope": base + ".speedscope.json",
        "pstats": base + ".pstats",
        "text": base + ".prof.txt",
        "chrome": base + ".json",
    }
    with Workload(python, "split.py", 30) as workload:
        args = ["record", "--pid", str(workload.pid), "--duration", "3", "--sort", "cumtime"]
        for path in files.values():
            args += ["-o", path]
        result = run_pysample(pysample, args)
        check(result.returncode == 0, "record failed with %d" % result.returncode)
        path = workload.path
        icicle = base + "-reverse.svg"
        reverse = run_pysample(pysample, ["record", "--pid", str(workload.pid), "--duration", "1", "--reverse",
                                          "-o", icicle])
        check(reverse.returncode == 0, "record --reverse failed with %d" % reverse.returncode)
    for name, out in files.items():
        check(os.path.getsize(out) > 0, "%s output %s is empty" % (name, out))
        check("wrote %s (%s)" % (out, name) in result.stderr, "summary does not list %s" % out)
    check_split(parse_collapsed(files["collapsed"]), path)
    names = ["main", "work_30", "work_70"]
    browser = os.path.join(ROOT, "tests", "browser")
    run_checker(["node", os.path.join(browser, "flamegraph.mjs"), files["flamegraph"]] + names)
    run_checker(["node", os.path.join(browser, "flamegraph.mjs"), icicle] + names)
    run_checker(["node", os.path.join(browser, "speedscope.mjs"), files["speedscope"]] + names)
    # speedscope also imports folded stacks, the collapsed format's other viewers' input.
    run_checker(["node", os.path.join(browser, "speedscope.mjs"), files["collapsed"]] + names)
    run_checker([SYSTEM_PYTHON, os.path.join(HERE, "check_pstats.py"), files["pstats"], files["text"],
                 "--slowest", "work_70", "--main", "main", "--caller", "main:work_30", "--caller", "main:work_70",
                 "--sort", "cumtime"])
    run_checker([SYSTEM_PYTHON, os.path.join(HERE, "check_chrome.py"), files["chrome"]] + names)


def test_errors(pysample, _python, tmp):
    # A pid that does not exist: the highest pid plus one is free at this instant.
    with open("/proc/sys/kernel/pid_max") as f:
        missing = int(f.read()) - 1
    while os.path.exists("/proc/%d" % missing):
        missing -= 1
    result = run_pysample(pysample, ["record", "--pid", str(missing), "--duration", "1"])
    check(result.returncode == 3, "no such pid: exit %d, expected 3" % result.returncode)
    check(len(result.stderr.strip().splitlines()) == 1 and "no process" in result.stderr,
          "no such pid: expected one clear line, got %r" % result.stderr)

    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        time.sleep(0.1)
        for sub in (["record", "--duration", "1"], ["dump"]):
            result = run_pysample(pysample, sub + ["--pid", str(sleeper.pid)])
            check(result.returncode == 5, "sleep process: exit %d, expected 5" % result.returncode)
            check(len(result.stderr.strip().splitlines()) == 1 and "not a Python process" in result.stderr,
                  "sleep process: expected one clear line, got %r" % result.stderr)
    finally:
        sleeper.kill()
        sleeper.wait()

    # Permission denied: an unprivileged user reading a root-owned process.
    if os.geteuid() == 0 and os.path.exists("/usr/bin/setpriv"):
        target = subprocess.Popen(["sleep", "100"])
        try:
            time.sleep(0.1)
            result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", pysample,
                                     "dump", "--pid", str(target.pid)], capture_output=True, text=True, timeout=30)
            print(result.stderr)
            check(result.returncode == 4, "permission denied: exit %d, expected 4" % result.returncode)
            check(len(result.stderr.strip().splitlines()) == 1 and "CAP_SYS_PTRACE" in result.stderr and
                  "root" in result.stderr and "kernel.yama.ptrace_scope" in result.stderr,
                  "permission denied: message does not say how to fix it: %r" % result.stderr)
        finally:
            target.kill()
            target.wait()
    else:
        print("skipped the permission check: needs root and setpriv")

    result = run_pysample(pysample, ["record", "--pid", "1", "--format", "bogus"])
    check(result.returncode == 2, "bad format: exit %d, expected 2" % result.returncode)
    result = run_pysample(pysample, ["record", "--pid", "1", "-o", "a.svg", "-o", "profile.bin"])
    check(result.returncode == 2 and "profile.bin" in result.stderr and "--format" in result.stderr,
          "unknown suffix: exit %d, %r" % (result.returncode, result.stderr))
    result = run_pysample(pysample, ["record", "--pid", "1", "--sort", "bogus"])
    check(result.returncode == 2 and "--sort" in result.stderr, "bad sort key: %r" % result.stderr)
    result = run_pysample(pysample, ["record", "-f", "collapsed", "-o", os.path.join(tmp, "x.txt"), "--",
                                     "/nonexistent/program"])
    check(result.returncode == 2 and "cannot run" in result.stderr, "missing program: %r" % result.stderr)


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}


def main(tests=None):
    """Runs one test of `tests` (default: this file's) named on the command line."""
    tests = TESTS if tests is None else tests
    parser = argparse.ArgumentParser()
    parser.add_argument("--pysample", required=True)
    parser.add_argument("--python", default=None)
    parser.add_argument("test", choices=sorted(tests))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pysample-e2e-") as tmp:
        try:
            tests[args.test](os.path.abspath(args.pysample), args.python, tmp)
        except Failure as failure:
            print("FAILED %s (%s): %s" % (args.test, args.python, failure))
            return 1
        except Skip as skip:
            print("skipped %s (%s): %s" % (args.test, args.python, skip))
            return SKIP_CODE
    print("passed %s (%s)" % (args.test, args.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
