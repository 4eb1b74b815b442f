#!/usr/bin/env python3
"""Safety tests: what pysample must never do to its target, and never report about it.

- kill: pysample killed (SIGKILL) at random times, holding the threads with --blocking or --native,
  never leaves a thread of the target stopped or traced, and the target's threads and signal
  handler keep running.
- churn: threads started and ended thousands of times a second, sampled without stopping them
  (--rate max --idle), with --blocking and with --native: no crash, no hang, and every stack
  reported is a call chain that the workload makes.
- forks: a target that forks and execs all the time, with and without --subprocesses: the same.
- blocked: threads blocked in read, select, sleep and a lock, sampled with --blocking and --native:
  their stacks show the blocking call, and they complete their calls normally afterwards.
- unstable: recursion, generators and coroutines that change faster than pysample reads them,
  sampled at --rate max: without stopping them, every stack is rooted at the module or a thread's
  entry and made of the workload's functions, with few torn ones (bounds measured); with
  --blocking, every stack is an exact call chain (each caller at the line that calls the next frame).

Usage: safety_test.py --pysample BIN --python INTERPRETER TEST
"""
import ast
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e  # noqa: E402
from run_e2e import WORKLOADS, Workload, check, interpreter_command, markers, parse_collapsed  # noqa: E402
from run_e2e import python_version, run_pysample  # noqa: E402


def function_lines(workload):
    """{function name: lines of its definition} of a workload, and '<module>': every line."""
    with open(os.path.join(WORKLOADS, workload)) as source:
        text = source.read()
    lines = {"<module>": range(1, text.count("\n") + 2)}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines[node.name] = range(node.lineno, node.end_lineno + 1)
    return lines


class CallChains:
    """The call chains a workload makes, to check reported stacks against.

    `calls` maps (caller, callee) to the lines of the caller that make that call: every frame but
    the innermost must be at one of them for the next frame's function; the innermost frame may be
    at any line of its function; the outermost frame must be one of `roots`. Functions are named
    (workload, function) and matched against the frames' file names and function names (the last
    part of a qualified name). A caller in `opaque` may call code outside the workloads (the
    standard library), which is not checked.
    """

    def __init__(self, workloads, roots, calls, opaque=(), torn_lines=0.0, mixed_calls=0.0):
        self.torn_lines = torn_lines  # the share of samples allowed a caller at a line that does not call
        self.mixed_calls = mixed_calls  # the share allowed a call the workload does not make
        self.torn = 0
        self.mixed = 0
        self.paths = workloads  # workload file -> path the interpreter sees it at
        self.lines = {name: function_lines(name) for name in workloads}
        self.roots = set(roots)
        self.calls = {}
        for (caller, callee), lines in calls.items():
            self.calls[(caller, callee)] = set(lines) if isinstance(lines, (set, list, tuple)) else {lines}
        self.opaque = set(opaque)
        self.leaves = {}
        self.depths = []

    def function_of(self, frame, frames):
        function, path, line = frame
        name = function.rpartition(".")[2]
        for workload, seen_at in self.paths.items():
            if path == seen_at:
                check(name in self.lines[workload], "unknown function %r of %s in %r" % (function, workload, frames))
                # The innermost frame may be at an instruction without a line, like the interpreter's
                # own f_lineno: a generator starting (3.10's GEN_START, 3.12's POP_TOP after
                # RETURN_GENERATOR).
                check(line in self.lines[workload][name] or (line is None and frame is frames[-1]),
                      "%s at line %s, outside its lines %r, in %r" % (function, line, self.lines[workload][name],
                                                                      frames))
                return (workload, name)
        return None

    def check(self, frames, count):
        named = [self.function_of(frame, frames) for frame in frames]
        check(named[0] in self.roots, "stack not rooted at %r: %r" % (sorted(self.roots), frames))
        for i in range(len(frames) - 1):
            caller, callee = named[i], named[i + 1]
            if caller in self.opaque and callee is None:
                break  # into the standard library
            check(callee is not None, "frame %r outside the workloads in %r" % (frames[i + 1], frames))
            if (caller, callee) not in self.calls:
                check(self.mixed_calls > 0, "%s does not call %s: %r" % (caller[1], callee[1], frames))
                self.mixed += count
                if self.mixed == count:
                    print("first stack with a call the workload does not make: %r" % (frames,))
                break
            if frames[i][2] not in self.calls[(caller, callee)]:
                check(self.torn_lines > 0, "%s calls %s from line %d, not from %r: %r" %
                      (caller[1], callee[1], frames[i][2], sorted(self.calls[(caller, callee)]), frames))
                self.torn += count
                if self.torn == count:
                    print("first stack with a caller at a line that does not call: %r" % (frames,))
                break
        leaf = next((n for n in reversed(named) if n is not None), named[0])
        self.leaves[leaf[1]] = self.leaves.get(leaf[1], 0) + count
        self.depths.append(len(frames))

    def check_stack(self, frames, count, native=False):
        """With `native`, checks the stack's Python frames, under which no native frame may be; a
        thread without Python frames (starting, or ending) has a native stack from its start."""
        if native:
            python = [f for f in frames if run_e2e.is_python_frame(f)]
            if not python:
                root = frames[0]
                # A stripped libc names its thread start by address: the child's half of clone3
                # has a call frame entry of its own, which starts the unnamed function.
                check(re.match(r"clone|start_thread|_start$|__libc_start|libc\.so[.0-9]*\+0x[0-9a-f]+$", root[0]) or
                      (root[0] == "[unknown]" and (root[1] or "").startswith("libc.so")),
                      "native stack without Python frames not rooted at a thread's start: %r" % (frames,))
                self.leaves["(native)"] = self.leaves.get("(native)", 0) + count
                return
            check(run_e2e.is_python_frame(frames[0]), "native frames below the Python ones: %r" % (frames,))
            frames = python
        self.check(frames, count)

    def check_all(self, stacks, native=False):
        for frames, count in stacks:
            self.check_stack(frames, count, native)
        total = sum(c for _, c in stacks)
        print("%d samples checked; deepest stack %d frames; innermost functions: %r" %
              (total, max(self.depths or [0]), sorted(self.leaves.items())))
        self.check_tears(total)
        return total

    def check_tears(self, total):
        """The stacks checked so far, `total` samples, have no more torn ones than allowed."""
        print("%d samples (%.3f%%) with a caller at a line that does not call its callee, %d (%.3f%%) with a call "
              "the workload does not make" % (self.torn, 100.0 * self.torn / max(total, 1), self.mixed,
                                              100.0 * self.mixed / max(total, 1)))
        check(self.torn <= run_e2e.torn_line_allowance(total, self.torn_lines),
              "%d of %d samples with a caller at a line that does not call its callee" % (self.torn, total))
        check(self.mixed <= run_e2e.torn_line_allowance(total, self.mixed_calls),
              "%d of %d samples with a call the workload does not make" % (self.mixed, total))


def summary(result):
    """(samples, errors) from the summary, which every run must print."""
    found = re.search(r"(\d+) samples in [\d.]+ s .*?, (\d+) errors", result.stderr)
    check(found, "no summary with the sample and error counts: %r" % result.stderr)
    return int(found.group(1)), int(found.group(2))


def check_accounting(result, reported, samples, errors):
    """What could not be read whole (a stack, or the list of threads) is counted in the summary,
    with its reasons, and makes its sample one with errors; the counts add up: no more stacks are
    rejected or reported than read, and no more samples fail than were taken."""
    rejected = re.search(r"(\d+) of (\d+) thread stacks rejected \(([^)]*)\)", result.stderr)
    lists = re.search(r"(\d+) samples? failed because the list of threads could not be read \(([^)]*)\)",
                      result.stderr)
    if rejected is None and lists is None:
        check(errors == 0, "%d samples with errors but nothing rejected" % errors)
        return
    count, read, unreadable = 0, 0, 0
    if rejected:
        count, read = int(rejected.group(1)), int(rejected.group(2))
        print("rejected: %s" % rejected.group(0))
        reasons = sum(int(n) for n in re.findall(r"(\d+) [a-z]", rejected.group(3)))
        check(reasons == count, "the reasons add up to %d rejections, not %d" % (reasons, count))
        check(count <= read, "%d of only %d stacks read were rejected" % (count, read))
        check(reported <= read, "%d stacks reported, of only %d read" % (reported, read))
    if lists:
        unreadable = int(lists.group(1))
        print("unreadable thread lists: %s" % lists.group(0))
        reasons = sum(int(n) for n in re.findall(r"(\d+) [a-z]", lists.group(2)))
        check(reasons == unreadable, "the reasons add up to %d unreadable lists, not %d" % (reasons, unreadable))
        check(unreadable <= errors, "%d unreadable thread lists, but only %d samples with errors" %
              (unreadable, errors))
    check(0 < errors <= min(count + unreadable, samples), "%d rejections and %d unreadable lists, but %d of %d "
          "samples with errors" % (count, unreadable, errors, samples))


def record(pysample, pid, tmp, extra, duration, deadline):
    """Records for `duration` seconds; pysample must exit 0 within `deadline` seconds."""
    out = os.path.join(tmp, "profile.txt")
    if os.path.exists(out):
        os.remove(out)
    args = ["record", "--pid", str(pid), "--duration", str(duration), "--format", "collapsed", "--output", out]
    started = time.time()
    try:
        result = run_pysample(pysample, args + extra, timeout=deadline)
    except subprocess.TimeoutExpired:
        raise run_e2e.Failure("pysample %s did not finish within %ds" % (" ".join(extra), deadline))
    check(result.returncode == 0, "pysample %s failed with %d" % (" ".join(extra), result.returncode))
    check(time.time() - started < duration + 10, "pysample %s took %.1fs for a %ds run" %
          (" ".join(extra), time.time() - started, duration))
    samples, errors = summary(result)
    return parse_collapsed(out), samples, errors, result


def task_ids(pid):
    try:
        return [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    except OSError:
        return []


def task_state(pid, tid):
    """(scheduler state letter, TracerPid) of one thread, or None once it has gone."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, tid)) as stat:
            state = stat.read().rpartition(")")[2].split()[0]
        with open("/proc/%d/task/%d/status" % (pid, tid)) as status:
            tracer = [line.split()[1] for line in status if line.startswith("TracerPid:")][0]
    except (OSError, IndexError):
        return None
    return state, int(tracer)


def held_threads(pid):
    """Threads of `pid` that are stopped (t, T) or traced, as {tid: (state, tracer)}."""
    held = {}
    for tid in task_ids(pid):
        found = task_state(pid, tid)
        if found and (found[0] in "tT" or found[1] != 0):
            held[tid] = found
    return held


def check_released(pid, what, grace=1.0):
    """No thread of `pid` stays stopped or traced (the kernel lets them go as the tracer exits)."""
    deadline = time.time() + grace
    held = held_threads(pid)
    while held and time.time() < deadline:
        time.sleep(0.01)
        held = held_threads(pid)
    check(not held, "%s: threads of %d left stopped or traced {tid: (state, TracerPid)}: %r" % (what, pid, held))


# --- kill: SIGKILL while the threads are held ------------------------------------------------------


class Progress:
    """The last 'progress ...' line of the spinners workload, read as it comes."""

    def __init__(self, stream):
        self.last = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, args=(stream,))
        self.thread.daemon = True
        self.thread.start()

    def read(self, stream):
        for line in stream:
            if line.startswith("progress "):
                with self.lock:
                    self.last = [int(v) for v in line.split()[1:]]

    def counters(self):
        with self.lock:
            return list(self.last) if self.last else None


def check_progress(progress, pid, what, deadline=5.0):
    """Every counter (alarms handled, the main thread's and each thread's loop) moves on."""
    before = progress.counters()
    check(before is not None, "%s: the workload reports no progress" % what)
    limit = time.time() + deadline
    while time.time() < limit:
        time.sleep(0.05)
        now = progress.counters()
        if all(b < n for b, n in zip(before, now)):
            return
    check(False, "%s: the target's counters stopped moving: %r then %r; threads: %r" %
          (what, before, progress.counters(), {t: task_state(pid, t) for t in task_ids(pid)}))


def test_kill(pysample, python, tmp):
    """SIGKILL at a random time in the first 0.5 s (attaching included) of --blocking --rate max and
    of --native --rate 1000 recordings of a target with busy threads and a 5 ms SIGALRM timer."""
    runs = 30
    seed = random.randrange(1 << 30)
    print("random seed %d" % seed)
    rng = random.Random(seed)
    command, _ = interpreter_command(python, "spinners.py")
    proc = subprocess.Popen(command + ["300", "4"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        check(proc.stdout.readline().strip() == "ready", "spinners.py did not start")
        progress = Progress(proc.stdout)
        pid = proc.pid
        check(len(task_ids(pid)) == 5, "expected 5 threads in the target, found %r" % task_ids(pid))
        for mode in (["--blocking", "--rate", "max"], ["--native", "--rate", "1000"]):
            kill_times = []
            for run in range(runs):
                what = "run %d with %s" % (run, " ".join(mode))
                sampler = subprocess.Popen([pysample, "record", "--pid", str(pid), "-q", "--idle", "-o",
                                            os.path.join(tmp, "killed.txt")] + mode,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                # A third of the kills come in the first 30 ms, while pysample attaches; a third at a
                # random time in the first 0.5 s; a third as soon as a thread is seen traced, however
                # long a loaded machine takes pysample to get there.
                started = time.monotonic()
                if run % 3 == 2:
                    while not held_threads(pid) and time.monotonic() - started < 10:
                        time.sleep(0.0005)
                else:
                    time.sleep(rng.uniform(0.0, 0.03 if run % 3 else 0.5))
                delay = time.monotonic() - started
                traced_at_kill = len(held_threads(pid))
                sampler.kill()
                code = sampler.wait()
                check(code == -signal.SIGKILL, "%s: pysample exited with %d before it was killed" % (what, code))
                kill_times.append((round(delay, 3), traced_at_kill))
                check(proc.poll() is None, "%s: the target died" % what)
                check_released(pid, what)
                check_progress(progress, pid, what)
            # Kills while pysample traced the threads are the ones that matter: there must have been some.
            print("%s: killed after (seconds, threads traced at the time): %r" % (" ".join(mode), kill_times))
            check(sum(1 for _, traced in kill_times if traced) >= 5,
                  "%s: fewer than 5 kills while the threads were traced" % " ".join(mode))
    finally:
        proc.kill()
        proc.wait()


# --- churn: threads appearing and vanishing -------------------------------------------------------


def stopped(extra):
    """Whether a recording with these options reads the stacks of stopped threads only. --native
    alone stops each thread it holds while reading it, but reads a thread started since the last
    sample (not held yet) as it runs."""
    return "--blocking" in extra


def tolerances(extra, mixed=0.01):
    """CallChains' allowances for torn stacks: none for stopped threads; otherwise a few callers at
    the line after their call, and (stacks changing within a microsecond) a few mixed calls."""
    return {} if stopped(extra) else {"torn_lines": run_e2e.TORN_LINE_SHARE, "mixed_calls": mixed}


def churn_chains(path, extra):
    m = markers("churn_threads.py")
    w = "churn_threads.py"
    return CallChains({w: path}, roots=[(w, "<module>"), (w, "entry")], calls={
        ((w, "<module>"), (w, "main")): m["callmain"],
        ((w, "entry"), (w, "middle")): m["callmiddle"],
        ((w, "middle"), (w, "leaf")): m["callleaf"],
    }, **tolerances(extra))


class ZombieCounter:
    """The most exited, unreaped threads a process had at once while it is watched: a tracer that
    does not reap the threads it traced leaves them as zombies until it lets go of them."""

    def __init__(self, pid):
        self.pid, self.most, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.05):
            zombies = sum(1 for tid in task_ids(self.pid) if (task_state(self.pid, tid) or ("?",))[0] == "Z")
            self.most = max(self.most, zombies)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.most


# Runs of a test whose samples of short-lived threads or processes depend on the machine's load.
FORK_ATTEMPTS = 3
# What a short-lived thread of churn_threads.py runs: where a sample finds it depends on the moment.
SHORT_LIVED_FUNCTIONS = ("entry", "middle", "leaf")


def in_short_lived_thread(frames):
    """Whether a stack's innermost Python frame is one of a short-lived thread's functions."""
    python = [frame for frame in frames if (frame[1] or "").endswith(".py")]
    return bool(python) and python[-1][0] in SHORT_LIVED_FUNCTIONS


def test_churn(pysample, python, tmp):
    """Thousands of threads a second, each living a fraction of a millisecond, sampled by each mode."""
    modes = [["--rate", "max", "--idle"], ["--blocking", "--rate", "max", "--idle"],
             ["--native", "--rate", "max", "--idle"]]
    for extra in modes:
        what = " ".join(extra)
        # A loaded machine may give too few samples, or none in a thread that lives a fraction of a
        # millisecond, in one run: the run is repeated, a few times at most.
        for attempt in range(FORK_ATTEMPTS):
            with Workload(python, "churn_threads.py", 3.5, 8) as workload:
                zombies = ZombieCounter(workload.pid)
                try:
                    stacks, samples, errors, result = record(pysample, workload.pid, tmp, extra, 2, 30)
                finally:
                    most_zombies = zombies.stop()
                out, err = workload.proc.communicate(timeout=30)
                check(workload.proc.returncode == 0, "the workload failed: %s" % err)
                started = int(out.split()[-1])
                print("%s: %d samples, %d errors; %d threads started in 3.5 s; at most %d exited threads unreaped" %
                      (what, samples, errors, started, most_zombies))
                check(started >= 100, "only %d threads started in 3.5 s" % started)
                check(most_zombies < 100, "%s: %d exited threads of the target left unreaped" % (what, most_zombies))
            if sum(c for _, c in stacks) >= 50 and any(in_short_lived_thread(frames) for frames, _ in stacks):
                break
            print("attempt %d: too few samples, or none in a short-lived thread; once more" % (attempt + 1))
        chains = churn_chains(workload.path, extra)
        total = chains.check_all(stacks, native="--native" in extra)
        check_accounting(result, total, samples, errors)
        check(total >= 50, "%s: only %d samples" % (what, total))
        seen = sum(chains.leaves.get(name, 0) for name in SHORT_LIVED_FUNCTIONS)
        check(seen > 0, "%s: no sample in a short-lived thread" % what)


# --- forks: fork and exec all the time ------------------------------------------------------------


def test_forks(pysample, python, tmp):
    """subprocess.call(['true']) and os.fork() children doing Python work, in a loop, while a thread
    keeps busy; sampled with and without --subprocesses (also holding the threads)."""
    m = markers("forker.py")
    w = "forker.py"
    modes = [[], ["--subprocesses"], ["--subprocesses", "--blocking"], ["--subprocesses", "--native"]]

    def forked_samples(stacks, parent_pid):
        return sum(count for frames, count in stacks if not frames[0][0].startswith("process %d " % parent_pid) and
                   any(f[0] == "child_work" for f in frames))

    for extra in modes:
        # A loaded machine may take longer to attach to a child than the child lives (0.15 s):
        # the run is repeated, a few times at most, until a child was sampled.
        for attempt in range(FORK_ATTEMPTS):
            with Workload(python, "forker.py", 3.5) as workload:
                stacks, samples, errors, result = record(pysample, workload.pid, tmp, extra + ["--rate", "500"], 2,
                                                         30)
                out, err = workload.proc.communicate(timeout=30)
                check(workload.proc.returncode == 0, "the workload failed: %s" % err)
                found = re.search(r"cycles (\d+) slowest ([\d.]+)", out)
                check(found, "the workload did not report its cycles: %r" % out)
                cycles, slowest = int(found.group(1)), float(found.group(2))
                print("%s: %d samples, %d errors; %d fork cycles, the slowest %.3f s" %
                      (" ".join(extra), samples, errors, cycles, slowest))
                check(cycles >= 5, "only %d fork cycles in 3.5 s" % cycles)
                check(slowest < 1.5, "a fork cycle took %.3f s: the target was held up" % slowest)
            enough = sum(c for _, c in stacks) >= 20
            if enough and ("--subprocesses" not in extra or forked_samples(stacks, workload.pid) > 0):
                break
            print("attempt %d: too few samples, or none in a forked child; once more" % (attempt + 1))
        chains = CallChains({w: workload.path}, roots=[(w, "<module>"), (w, "busy")], opaque=[(w, "run_command")],
                            **tolerances(extra), calls={
            ((w, "<module>"), (w, "main")): m["callmain"],
            ((w, "main"), (w, "run_command")): m["callcommand"],
            ((w, "main"), (w, "child_work")): m["callchild"],
            ((w, "child_work"), (w, "child_leaf")): m["callchildleaf"],
            ((w, "busy"), (w, "child_leaf")): m["busyleaf"],
        })
        if "--subprocesses" in extra:
            parent = children = 0
            for frames, count in stacks:
                match = re.match(r"^process (\d+) (.*)$", frames[0][0])
                check(match, "stack without a process root: %r" % frames[:2])
                check(os.path.basename(workload.path) in match.group(2),
                      "a process that is not the workload or its fork: %r" % frames[0][0])
                chains.check_stack(frames[1:], count, native="--native" in extra)
                if int(match.group(1)) == workload.pid:
                    parent += count
                elif any(f[0] == "child_work" for f in frames):
                    children += count
            chains.check_tears(sum(c for _, c in stacks))
            print("samples in the parent %d, in forked children %d" % (parent, children))
            check(children > 0, "no sample in a forked child")
            check(re.search(r"sampled ([2-9]|\d\d+) Python processes", result.stderr), "no child process sampled")
        else:
            chains.check_all(stacks, native="--native" in extra)
            check(not any(f[0] == "child_work" for frames, _ in stacks for f in frames),
                  "a forked child's stack reported without --subprocesses")
        check(sum(c for _, c in stacks) >= 20, "%s: only %d samples" % (" ".join(extra), sum(c for _, c in stacks)))


# --- blocked: threads in system calls -------------------------------------------------------------


class Recording:
    """pysample recording in the background, once it has taken its first sample (with --native, the
    first one also loads the symbols of the frames it unwinds: a signal waits for it to end)."""

    def __init__(self, pysample, pid, tmp, extra, duration):
        self.out = os.path.join(tmp, "profile.txt")
        args = ["record", "--pid", str(pid), "--duration", str(duration), "--format", "collapsed", "--output",
                self.out, "-v"] + extra
        self.what = " ".join(extra)
        # pysample cannot let go of the target before this: its run lasts `duration` from the moment
        # it has attached, which it says in its "sampling pid" line (a loaded machine may take seconds
        # to get there).
        self.earliest_end = time.time() + duration
        self.proc = subprocess.Popen([pysample] + args, stderr=subprocess.PIPE, text=True)
        self.stderr = ""
        for line in self.proc.stderr:
            self.stderr += line
            if line.startswith("pysample: sampling "):
                self.earliest_end = time.time() + duration
            if "first sample at monotonic" in line:
                break

    def finish(self, deadline=30):
        """(stacks, samples, errors, stderr) once pysample has exited 0 within `deadline` seconds."""
        try:
            self.stderr += self.proc.communicate(timeout=deadline)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise run_e2e.Failure("pysample %s did not finish within %ds" % (self.what, deadline))
        sys.stdout.write("$ pysample record %s -> exit %d\n%s" % (self.what, self.proc.returncode,
                                                                  "".join(l for l in self.stderr.splitlines(True)
                                                                          if "[debug]" not in l)))
        check(self.proc.returncode == 0, "pysample %s failed with %d" % (self.what, self.proc.returncode))
        result = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, "", self.stderr)
        samples, errors = summary(result)
        return parse_collapsed(self.out), samples, errors, result


class SignalTimer:
    """Sends SIGUSR1 to a process a few times, noting when each one reaches the handler (the
    workload's wakeup descriptor gets a byte as it does)."""

    def __init__(self, pid, wakeup, count=5, start=0.1, interval=0.1, until=None):
        self.pid, self.wakeup, self.count, self.start, self.interval = pid, wakeup, count, start, interval
        self.until = until  # no signal is sent after this time
        self.sent, self.delivered = [], []
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        time.sleep(self.start)
        for _ in range(self.count):
            if self.until is not None and time.time() > self.until:
                break
            self.sent.append(time.time())
            os.kill(self.pid, signal.SIGUSR1)
            ready, _, _ = select.select([self.wakeup], [], [], 30.0)
            if ready:
                os.read(self.wakeup, 64)
            self.delivered.append(time.time() if ready else None)
            time.sleep(self.interval)

    def check(self, what, recording):
        """Every signal reached the target while pysample was still recording: one held until
        pysample lets go of the threads arrives only after the recording's end. (Not a latency
        bound: a loaded machine delays any handler.)"""
        self.thread.join()
        print("%s: signal delivery took %s" % (what, ", ".join(
            "%.1f ms" % (1000 * (d - s)) if d is not None else "never" for s, d in zip(self.sent, self.delivered))))
        check(None not in self.delivered, "%s: a signal never reached the target" % what)
        check(self.count == 0 or self.sent, "%s: the first sample came too late in the recording to send a signal "
                                            "during it" % what)
        late = [d - recording.earliest_end for d in self.delivered if d >= recording.earliest_end]
        check(not late, "%s: %d signals sent during the recording reached the target only after it could have "
                        "ended: held by pysample" % (what, len(late)))


def test_blocked(pysample, python, tmp):
    """Threads in read(), select(), a lock and a sleep, sampled holding them (--blocking, --native):
    each shows its blocking line, signals sent to the target meanwhile reach it at once, and
    afterwards each call completes as if nothing happened. Without --idle, --native leaves the
    idle threads alone: signals must still reach them."""
    m = markers("blocked_calls.py")
    version = python_version(python)
    calls = {"read_stdin": ("blockread", r"\bread\b|__libc_read|read_nocancel"),
             "wait_select": ("blockselect", r"select"),
             "sleep_for": ("blocksleep", r"nanosleep|select|clock_nanosleep"),
             "wait_lock": ("blocklock", r"sem_|futex|pthread_cond|lll_lock|lock")}
    modes = [["--blocking", "--idle"], ["--native", "--idle"], ["--native", "--blocking", "--idle"], ["--native"]]
    for extra in modes:
        what = " ".join(extra)
        # The recording (3 s) ends long before the sleep, even on a loaded machine where starting it
        # takes seconds; a sleep restarted from scratch after each interruption would last until at
        # least 3 s past its length.
        sleep, duration = 12.0, 3
        command, path = interpreter_command(python, "blocked_calls.py")
        wakeup, wakeup_write = os.pipe()
        proc = subprocess.Popen(command + [str(sleep), str(wakeup_write)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=[wakeup_write])
        os.close(wakeup_write)
        try:
            started = time.time()
            check(proc.stdout.readline().strip() == "ready", "blocked_calls.py did not start: %s" %
                  (proc.stderr.read() if proc.poll() is not None else ""))
            recording = Recording(pysample, proc.pid, tmp, extra + ["--rate", "200"], duration)
            # Python 2 is sent no signal: its time.sleep() ends early when a signal interrupts it, and the
            # kernel may pick the sleeping thread to take it.
            # Signals are sent while the recording surely goes on: a loaded machine may take most of
            # it to the first sample.
            signals = SignalTimer(proc.pid, wakeup, count=0 if version < (3, 0) else 5,
                                  until=recording.earliest_end - 0.5)
            stacks, samples, errors, result = recording.finish()
            signals.check(what, recording)
            check(time.time() - started < sleep - 0.5, "the recording ended too late to check the sleep")
            check_released(proc.pid, what, grace=0.5)
            proc.stdin.write("go")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=sleep + 10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(wakeup)
        print("%s: %d samples, %d errors; the workload printed %r" % (what, samples, errors, out))
        check(proc.returncode == 0, "the workload failed with %d: %s" % (proc.returncode, err))
        results = json.loads(out.strip().splitlines()[-1])
        check(results.get("read") == "go", "read returned %r, expected 'go'" % results.get("read"))
        check(results.get("lock") == "acquired", "lock acquire returned %r" % results.get("lock"))
        check(results.get("select") == [1, "x"], "select returned %r, expected [1, 'x']" % results.get("select"))
        check(version < (3, 0) or results.get("signals", 0) >= 1, "the signal handler never ran: %r" % results)
        slept = results.get("sleep")
        check(isinstance(slept, float) and sleep - 0.01 <= slept < sleep + duration - 1,
              "time.sleep(%s) lasted %r" % (sleep, slept))
        if "--idle" not in extra:
            continue
        total = sum(c for _, c in stacks)
        check(total >= 20, "only %d samples" % total)
        # With --native, a stack whose native frames could not be merged is kept with its Python
        # frames alone, and counted in the summary.
        unmerged = re.search(r"(\d+) kept as Python-only", result.stderr)
        unmerged = int(unmerged.group(1)) if unmerged else 0
        python_only = merged_functions = 0
        for function, (marker, native) in sorted(calls.items()):
            chains = [(frames, count) for frames, count in stacks if any(f[0] == function for f in frames)]
            check(chains, "%s: no sample of %s" % (what, function))
            merged = 0
            for frames, count in chains:
                ours = [i for i, f in enumerate(frames) if f[1] == path]
                innermost = frames[ours[-1]]
                check(innermost == (function, path, m[marker]), "%s: innermost workload frame %r, expected %s at %d" %
                      (what, innermost, function, m[marker]))
                check(len(ours) >= 2 and frames[ours[-2]] == ("record", path, m["callbody"]),
                      "%s is not called by record(): %r" % (function, frames))
                above = frames[ours[-1] + 1:]
                if "--native" in extra and above:
                    check(not any(run_e2e.is_python_frame(f) for f in above),
                          "%s: Python frames above %s: %r" % (what, function, frames))
                    check(any(re.search(native, f[0]) for f in above), "%s: no %s call above %s: %r" %
                          (what, native, function, above))
                    merged += count
                elif "--native" in extra:
                    python_only += count
                else:
                    check(not above, "frames above the blocking line of %s: %r" % (function, frames))
            merged_functions += 1 if merged else 0
        check(python_only <= unmerged, "%s: %d stacks without native frames, more than the %d the summary counts" %
              (what, python_only, unmerged))
        # Where the summary counts no unmerged stack, every blocked call shows in native frames.
        check("--native" not in extra or merged_functions >= (len(calls) if unmerged == 0 else 1),
              "%s: the system calls of only %d of the blocked functions seen in native frames, %d stacks "
              "unmerged" % (what, merged_functions, unmerged))
        print("%s: %d stacks, each blocked function at its blocking line" % (what, total))


# --- spawn_wait: a thread that cannot be stopped --------------------------------------------------


def wait_for_state(pid, tid, state, deadline=10.0):
    limit = time.time() + deadline
    while time.time() < limit:
        found = task_state(pid, tid)
        if found and found[0] == state:
            return True
        time.sleep(0.01)
    return False


def test_spawn_wait(pysample, python, tmp):
    """A main thread in an uninterruptible wait (posix_spawn's child blocked before its exec) and
    another thread. record --blocking, --native and both, and dump, end on time, with short
    pauses: the waiting thread, which no ptrace stop reaches, is not waited for past a bound, and
    is read as it is, at its blocking line. Afterwards no thread is left stopped or traced, and
    once the child can go on, the workload ends normally."""
    version = python_version(python)
    if version < (3, 8):
        print("skipped: os.posix_spawn needs Python 3.8+, this is %d.%d" % version[:2])
        return
    m = markers("spawn_wait.py")
    root = python.split("::", 1)[0] if "::" in python else None
    modes = [["--blocking", "--idle"], ["--native", "--idle"], ["--native", "--blocking", "--idle"], ["dump"]]
    for extra in modes:
        what = " ".join(extra)
        inner_fifo = "/tmp/pysample-workloads/spawn-wait-%d.fifo" % os.getpid() if root else \
            os.path.join(tmp, "spawn-wait.fifo")
        fifo = os.path.join(root, inner_fifo.lstrip("/")) if root else inner_fifo
        if os.path.exists(fifo):
            os.remove(fifo)
        os.mkfifo(fifo)
        with Workload(python, "spawn_wait.py", inner_fifo) as workload:
            check(wait_for_state(workload.pid, workload.pid, "D"),
                  "the main thread never entered the uninterruptible wait: %r" % (task_state(workload.pid, workload.pid),))
            started = time.time()
            if extra == ["dump"]:
                result = run_pysample(pysample, ["dump", "--pid", str(workload.pid)], timeout=30)
                check(result.returncode == 0, "dump failed with %d: %s" % (result.returncode, result.stderr))
                check("main" in result.stdout and "spin" in result.stdout,
                      "dump does not show both threads:\n%s" % result.stdout)
                took, samples = time.time() - started, None
            else:
                stacks, samples, errors, result = record(pysample, workload.pid, tmp, extra + ["--rate", "200"], 2, 30)
                took = time.time() - started
            check_released(workload.pid, what, grace=0.5)
            check(task_state(workload.pid, workload.pid)[0] == "D", "the main thread left its wait too early")
            with open(fifo, "w"):
                pass
            workload.proc.wait(timeout=30)
            check(workload.proc.returncode == 0, "the workload failed with %d: %s" %
                  (workload.proc.returncode, workload.proc.stderr.read()))
        os.remove(fifo)
        print("%s: %.2f s%s" % (what, took, "" if samples is None else ", %d samples, %d errors" % (samples, errors)))
        if samples is None:
            check(took < 3, "dump took %.2f s" % took)
            continue
        check(took < 2 + 2.5, "%s: a 2-second recording took %.2f s" % (what, took))
        check(samples >= 100, "%s: only %d samples in 2 s at 200 Hz" % (what, samples))
        check(re.search(r"\d+ times? a thread did not stop within", result.stderr),
              "%s: the summary does not tell of the thread that could not be stopped" % what)
        pause = re.search(r"stopped for ([\d.]+) us per", result.stderr)
        check(pause and float(pause.group(1)) < 20000, "%s: threads held %s us per sample on average" %
              (what, pause.group(1) if pause else "?"))
        blocked = spinning = 0
        for frames, count in stacks:
            ours = [f for f in frames if f[1] == workload.path]
            if ours and ours[-1][0] == "main":
                check(ours[-1][2] == m["spawn"], "%s: the waiting thread at %r, expected line %d" %
                      (what, ours[-1], m["spawn"]))
                blocked += count
            elif ours and ours[-1][0] == "spin":
                spinning += count
        check(blocked > 0 and spinning > 0, "%s: %d stacks of the waiting thread, %d of the busy one" %
              (what, blocked, spinning))


# --- unstable: stacks that change under a read ----------------------------------------------------


# The unstable workload changes its stacks faster than a read without stopping can copy them (a
# page takes about a microsecond): such reads show some callers past the line that made the call,
# and a few mix two moments of a deep recursion into a call it never makes. Measured on a 2-core
# VM at --rate max: 1-3.5% and 0.1-0.5% of the samples, across 2.7 to 3.15.
UNSTABLE_TORN_LINES = 0.06
UNSTABLE_MIXED_CALLS = 0.015


def unstable_chains(python, workload_path, coroutine_path, exact):
    version = python_version(python)
    w, c = "unstable_stacks.py", "unstable_coroutines.py"
    m = markers(w)
    paths = {w: workload_path}
    calls = {
        ((w, "<module>"), (w, "main")): m["callmain"],
        ((w, "main"), (w, "recursion")): m["callrecursion"],
        ((w, "recursion"), (w, "ping")): m["startping"],
        ((w, "recursion"), (w, "pong")): m["startpong"],
        ((w, "ping"), (w, "pong")): m["callpong"],
        ((w, "pong"), (w, "ping")): m["callping"],
        ((w, "ping"), (w, "spin")): m["pingspin"],
        ((w, "pong"), (w, "spin")): m["pongspin"],
        ((w, "thread_entry"), (w, "generators")): m["callbody"],
        ((w, "thread_entry"), (w, "tasks")): m["callbody"],
        ((w, "generators"), (w, "gen_a")): [m["zip"], m["closea"]],
        ((w, "generators"), (w, "gen_b")): [m["zip"], m["closeb"]],
        ((w, "gen_a"), (w, "helper")): m["gena"],
        ((w, "helper"), (w, "spin")): m["helperspin"],
        ((w, "tasks"), (w, "task")): [m["prime"], m["send"], m["closetask"]],
    }
    leaves = {"ping", "pong", "spin", "gen_b", "task"}
    if version >= (3, 5):
        mc = markers(c)
        paths[c] = coroutine_path
        calls.update({
            ((w, "thread_entry"), (c, "coroutines")): m["callbody"],
            ((c, "coroutines"), (c, "outer")): [mc["resume"], mc["close"]],
            ((c, "outer"), (c, "inner")): mc["awaitinner"],
            ((c, "outer"), (c, "__await__")): mc["awaitswitch"],
            # close() closes the awaitable it waits on first, from the caller of close().
            ((c, "coroutines"), (c, "__await__")): mc["close"],
        })
        leaves |= {"inner"}
    chains = CallChains(paths, roots=[(w, "<module>"), (w, "thread_entry")], calls=calls,
                        torn_lines=0 if exact else UNSTABLE_TORN_LINES,
                        mixed_calls=0 if exact else UNSTABLE_MIXED_CALLS)
    return chains, leaves


def test_unstable(pysample, python, tmp):
    """Recursion to random depths, generators and coroutines switching, frames freed and reused, read
    at --rate max. Without stopping the threads: no crash, stacks rooted in the workload and made of
    its functions, the few torn ones within the measured bounds, the failed reads counted. With
    --blocking: only exact call chains."""
    _, coroutine_path = interpreter_command(python, "unstable_coroutines.py")  # copied next to the workload
    for extra, exact in ((["--rate", "max", "--idle"], False), (["--blocking", "--rate", "max", "--idle"], True)):
        what = " ".join(extra)
        with Workload(python, "unstable_stacks.py", 3) as workload:
            stacks, samples, errors, result = record(pysample, workload.pid, tmp, extra, 2, 30)
            out, err = workload.proc.communicate(timeout=30)
            check(workload.proc.returncode == 0 and out.strip() == "done", "the workload failed: %r %s" % (out, err))
        chains, leaves = unstable_chains(python, workload.path, coroutine_path, exact)
        total = chains.check_all(stacks)
        print("%s: %d samples, %d with errors" % (what, samples, errors))
        check_accounting(result, total, samples, errors)
        check(samples >= 200, "%s: only %d samples in 2 s" % (what, samples))
        check(total >= min(samples // 2, 1000), "%s: only %d stacks reported" % (what, total))
        missing = leaves - set(chains.leaves)
        check(not missing, "%s: no sample with %r innermost" % (what, sorted(missing)))
        check(max(chains.depths) >= 30, "%s: the deepest stack reported has %d frames" % (what, max(chains.depths)))


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
