#!/usr/bin/env python3
"""What production hosts do to a profiler: end-to-end tests against real processes.

- signals: a program with a 4 ms SIGALRM timer keeps its pace and handles every signal while it
  is recorded with --blocking and with --native at several rates, measured during each recording
  against a twin of it that nobody profiles.
- periodic: a signal handler that takes 18% of the time on a 4 ms timer gets its share of the
  samples, whatever the rate (no locking onto the period), with and without --blocking.
- deep: a recursion thousands of frames deeper than kept whole is kept, cut in the middle with a
  marker that counts the frames left out.
- containers: a target in its own PID and mount namespaces, profiled from the host in every mode:
  record (CPU and wall-clock time, --blocking, --native, --gil, --threads, --subprocesses), dump
  (with both thread ids) and top.
- subinterpreters: the main thread computes in the main interpreter while another thread runs a
  sub-interpreter: both are seen, each under its own thread, the sub-interpreter's frames on top
  of the call that entered it.
- exec: a target that execs into another Python program is followed into it.
- replaced: an interpreter whose files were deleted or replaced on disk (an upgrade) is read from
  what the process maps, and the user is told.
- server: a thread-per-request HTTP server under load: few rejected stacks, the handlers' split
  as the server itself measures it.
- cpu_mode: a busy thread and 90 that wake every 10 ms: each group's share of the CPU-time
  samples is its share of the CPU time the kernel counted.
- retitle: --subprocesses with workers that retitle themselves (setproctitle): one root each.
- greenlets (an interpreter with greenlet): greenlets switching all the time are read whole and
  in their true proportions. pypy: a PyPy process is named as such and refused.

Usage: production_test.py --pysample BIN [--python INTERPRETER] TEST
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e  # noqa: E402
from run_e2e import Workload, check, interpreter_command, markers, parse_collapsed  # noqa: E402
from run_e2e import python_version, run_pysample  # noqa: E402
from safety_test import check_released, summary  # noqa: E402


def record(pysample, pid, tmp, extra, duration=2, name="profile.txt"):
    """Collapsed stacks and pysample's result for a recording of `duration` seconds."""
    out = os.path.join(tmp, name)
    if os.path.exists(out):
        os.remove(out)
    result = run_pysample(pysample, ["record", "--pid", str(pid), "--duration", str(duration), "-f", "collapsed",
                                     "-o", out] + list(extra), timeout=duration + 60)
    check(result.returncode == 0, "pysample record %s failed with %d" % (" ".join(extra), result.returncode))
    return parse_collapsed(out), result


def total(stacks):
    return sum(count for _, count in stacks)


def record_until(pysample, pid, tmp, extra, enough, duration):
    """record() for `duration` seconds, then for twice as long, and so on, until enough(stacks): a
    loaded machine gives fewer samples in the same time."""
    return run_e2e.longer_until(lambda seconds: record(pysample, pid, tmp, extra, duration=seconds),
                                lambda recorded: enough(recorded[0]), duration)


def root_label(frames):
    """A stack's root frame as written ("thread 12 (name)", "process 34 cmd"), which parse_frame()
    splits like a function and its file."""
    function, location, line = frames[0]
    return function if location is None else "%s (%s%s)" % (function, location, "" if line is None else ":%d" % line)


def binomial_tolerance(share, samples, floor=0.03):
    """How far a share measured over `samples` samples may be from the truth: 5 standard deviations
    of a binomial count, plus a floor for what the workload's own timing may be off by."""
    return 5 * math.sqrt(max(share * (1 - share), 0.01) / max(samples, 1)) + floor


def rejected_stacks(result):
    """(stacks rejected, stacks read) from the summary; (0, 0) when none was rejected."""
    found = re.search(r"(\d+) of (\d+) thread stacks rejected", result.stderr)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


class LineReader:
    """Reads a process's output lines as they come, keeping them with the time they arrived."""

    def __init__(self, stream):
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, args=(stream,))
        self.thread.daemon = True
        self.thread.start()

    def read(self, stream):
        for line in stream:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def matching(self, prefix):
        with self.lock:
            return [line for line in self.lines if line.startswith(prefix)]


# --- signals: a periodic timer, held up by nothing ----------------------------------------------------


def progress_rates(reader, start, end):
    """(loops per second, signals per second) of a signal_ticker between two times, from its reports."""
    reports = [[float(v) for v in line.split()[1:]] for line in reader.matching("progress ")]
    inside = [r for r in reports if start <= r[0] <= end]
    if len(inside) < 2:
        return 0.0, 0.0
    first, last = inside[0], inside[-1]
    elapsed = max(last[0] - first[0], 1e-6)
    return (last[1] - first[1]) / elapsed, (last[2] - first[2]) / elapsed


def test_signals(pysample, python, tmp):
    """While pysample holds no thread between samples, a program's 4 ms timer signals reach it at
    once, whatever the rate: its progress and its signals handled, measured during each recording,
    keep up with those of an identical program that nobody profiles, running at the same time."""
    runs = [(mode, rate) for mode in (["--blocking"], ["--native"]) for rate in (50, 200, 300)]
    # Long enough for slow recordings on a loaded machine: the workloads are stopped at the end.
    seconds = 600
    with Workload(python, "signal_ticker.py", seconds, 4) as target, \
            Workload(python, "signal_ticker.py", seconds, 4) as twin:
        readers = [LineReader(target.proc.stdout), LineReader(twin.proc.stdout)]
        time.sleep(0.5)
        windows = []
        for mode, rate in runs:
            started = time.time()
            _, result = record(pysample, target.pid, tmp, mode + ["--rate", str(rate)], duration=1.5)
            windows.append((" ".join(mode), rate, started + 0.3, time.time() - 0.2))
            check_released(target.pid, " ".join(mode))
            check(target.proc.poll() is None, "the target died under %s" % " ".join(mode))
        time.sleep(0.3)
    aggregate = {}
    for what, rate, start, end in windows:
        (loops, signals), (twin_loops, twin_signals) = [progress_rates(r, start, end) for r in readers]
        print("%s at %d Hz: the target made %.0f loops/s and handled %.0f signals/s; its twin %.0f and %.0f" %
              (what, rate, loops, signals, twin_loops, twin_signals))
        check(twin_signals > 50, "the unprofiled twin handled only %.0f signals a second" % twin_signals)
        check(signals >= 0.6 * twin_signals, "%s at %d Hz: the target handled %.0f signals a second, its twin %.0f" %
              (what, rate, signals, twin_signals))
        check(loops >= 0.4 * twin_loops, "%s at %d Hz: the target made %.0f loops a second, its twin %.0f" %
              (what, rate, loops, twin_loops))
        sums = aggregate.setdefault(what, [0.0, 0.0, 0.0, 0.0])
        for i, value in enumerate((loops, signals, twin_loops, twin_signals)):
            sums[i] += value
    for what, (loops, signals, twin_loops, twin_signals) in aggregate.items():
        print("%s overall: %.0f%% of the twin's pace, %.0f%% of its signals" %
              (what, 100 * loops / twin_loops, 100 * signals / twin_signals))
        check(loops >= 0.7 * twin_loops and signals >= 0.85 * twin_signals,
              "%s: the target kept %.0f%% of its twin's pace and handled %.0f%% of its signals" %
              (what, 100 * loops / twin_loops, 100 * signals / twin_signals))


# --- periodic: no locking onto a period -------------------------------------------------------------


def handler_share(stacks):
    """The share of the samples whose stack is in busy_handler, and the sample count."""
    count = total(stacks)
    inside = sum(c for frames, c in stacks if any(f[0] == "busy_handler" for f in frames))
    return inside / max(count, 1), count


def handler_time_share(reader, start, end):
    """The share of the time between two times that periodic_handler.py spent in its handler."""
    reports = [[float(v) for v in line.split()[1:]] for line in reader.matching("progress ")]
    inside = [r for r in reports if start <= r[0] <= end]
    check(len(inside) >= 2, "the workload reported no progress between %.1f and %.1f" % (start, end))
    return (inside[-1][1] - inside[0][1]) / max(inside[-1][0] - inside[0][0], 1e-6)


# The timer's period. Not a multiple of the scheduler's tick (4 ms at HZ=250): on a loaded machine
# the sampler itself gets a core on the scheduler's ticks, which would lock onto a timer of that
# period whatever the sampler does.
PERIOD_MS = 4.7


def test_periodic(pysample, python, tmp):
    """A handler that a timer runs for 18% of the time: at the timer's rate and twice it (its period
    a multiple of the interval), with and without --blocking, its share of the samples is the share
    of the time the program itself measures over the same time. --blocking keeps every sample of
    the running thread."""
    rate = 1000 / PERIOD_MS
    runs = [([], 2 * rate), (["--blocking"], rate), ([], rate)]
    with Workload(python, "periodic_handler.py", 60, PERIOD_MS) as workload:
        reader = LineReader(workload.proc.stdout)
        time.sleep(0.3)
        recorded = []
        for extra, rate in runs:
            stacks, result = record(pysample, workload.pid, tmp, extra + ["--idle", "-v", "--rate", "%.3f" % rate],
                                    duration=2)
            samples, _ = summary(result)
            # The run's own time, from its first sample (which a loaded machine may take a while to
            # attach for) for as long as it says it sampled; the workload reports wall-clock times.
            first = re.search(r"first sample at monotonic ([\d.]+) s", result.stderr)
            took = re.search(r"\d+ samples in ([\d.]+) s", result.stderr)
            check(first and took, "no first sample time or duration in: %s" % result.stderr[-500:])
            start = float(first.group(1)) + (time.time() - time.monotonic())
            truth = handler_time_share(reader, start, start + float(took.group(1)))
            recorded.append((" ".join(extra) or "without --blocking", rate, stacks, samples, truth))
    for what, rate, stacks, samples, truth in recorded:
        share, count = handler_share(stacks)
        allowed = binomial_tolerance(truth, count)
        print("%s at %.1f Hz: %.1f%% of %d samples in the handler, which took %.1f%% of the time (within %.1f points)"
              % (what, rate, 100 * share, count, 100 * truth, 100 * allowed))
        check(0.05 < truth < 0.9, "the handler took %.1f%% of the time" % (100 * truth))
        check(abs(share - truth) <= allowed, "%s at %.1f Hz: the handler has %.1f%% of the samples, for %.1f%% of "
              "the time" % (what, rate, 100 * share, 100 * truth))
        check(count >= 0.95 * samples, "%s at %.1f Hz: %d stacks of the running thread in %d samples" %
              (what, rate, count, samples))


# --- deep: a stack too deep to keep whole ------------------------------------------------------------


def check_cut_stacks(stacks, path, depth):
    """Every stack: <module>, the recursion (its middle replaced by one marker frame) and bottom,
    the frames kept and left out adding up to the whole stack."""
    m = markers("deep_recursion.py")
    whole = depth + 3  # <module>, recurse depth + 1 times, bottom
    for frames, count in stacks:
        check(frames[0] == ("<module>", path, m["callrecurse"]), "stack not rooted at <module>: %r" % (frames[:3],))
        cut = [i for i, f in enumerate(frames) if re.fullmatch(r"\[(\d+) frames omitted\]", f[0])]
        check(len(cut) == 1, "%d markers in a stack of %d frames" % (len(cut), len(frames)))
        omitted = int(re.fullmatch(r"\[(\d+) frames omitted\]", frames[cut[0]][0]).group(1))
        kept = frames[:cut[0]] + frames[cut[0] + 1:]
        check(len(kept) + omitted == whole, "%d frames kept and %d omitted, for a stack of %d" %
              (len(kept), omitted, whole))
        check(kept[-1][:2] == ("bottom", path) and kept[-2] == ("recurse", path, m["callbottom"]),
              "the innermost frames are %r" % (kept[-2:],))
        check(all(f == ("recurse", path, m["recurse"]) for f in kept[1:-2]), "a frame other than the recursion "
              "between <module> and bottom")


def test_deep(pysample, python, tmp):
    """20,000 frames (6,000 before 3.11, whose frames use the C stack) are kept as their outermost
    and innermost frames with a marker that counts the rest, in record (with and without
    --blocking, and --native) and in dump; the summary says so."""
    depth = 20000 if python_version(python) >= (3, 11) else 6000
    with Workload(python, "deep_recursion.py", depth, 60) as workload:
        # Wall-clock time: the running thread in every sample, whatever CPU a loaded machine gives it.
        for extra in ([], ["--blocking"], ["--native"]):
            stacks, result = record_until(pysample, workload.pid, tmp, extra + ["--idle"],
                                          lambda stacks: total(stacks) >= 20, duration=1.5)
            check(total(stacks) >= 20, "%s: only %d samples" % (" ".join(extra), total(stacks)))
            check_cut_stacks(stacks, workload.path, depth)
            check(re.search(r"\d+ stacks? deeper than 4096 frames \(the deepest %d\) kept" % (depth + 3),
                            result.stderr), "the summary does not say the stacks were cut")
            check("frame chain too deep" not in result.stderr, "deep stacks rejected")
            if extra == ["--native"]:
                check("Python stack cut in the middle" in result.stderr, "--native does not say why it kept the "
                      "stacks Python-only")
        dump = run_pysample(pysample, ["dump", "--pid", str(workload.pid)])
    check(dump.returncode == 0, "dump failed with %d" % dump.returncode)
    check(re.search(r"^  \.\.\. \[%d frames omitted\] \.\.\.$" % (depth + 3 - 4096), dump.stdout, re.M),
          "dump does not show the frames left out")


# --- containers: PID and mount namespaces -------------------------------------------------------------


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as stat:
                    if int(stat.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def namespace_tids(pid):
    """{host tid: tid in the process's own PID namespace} of every thread of `pid`."""
    ids = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as status:
            for line in status:
                if line.startswith("NSpid:"):
                    ids[int(tid)] = int(line.split()[-1])
    return ids


def unshare_propagation():
    """unshare's options for the new mount namespace. It makes every mount private by default,
    which fails where / is no mount point (a chroot made with debootstrap); /proc, which
    --mount-proc makes private before it mounts the new proc over it, is then enough."""
    probe = subprocess.run(["unshare", "--mount", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    if probe.returncode != 0 and "propagation" in probe.stderr:
        return ["--propagation", "unchanged"]
    return []


def container_target(python, seconds):
    """Starts container_app.py in new PID and mount namespaces: (unshare's process, the Python
    process as the host numbers it, the path the interpreter sees the workload at)."""
    command, path = interpreter_command(python, "container_app.py")
    proc = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"] + unshare_propagation() +
                            command + [str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    check(line.strip() == "ready", "container_app did not start: %r %s" % (line, proc.stderr.read()
                                                                          if proc.poll() is not None else ""))
    deadline = time.time() + 5
    while time.time() < deadline:
        for child in children_of(proc.pid):
            # The interpreter, and not the app's own fork (a grandchild of unshare).
            with open("/proc/%d/status" % child) as status:
                nspid = [line.split() for line in status if line.startswith("NSpid:")]
            if nspid and nspid[0][-1] == "1":
                return proc, child, path
        time.sleep(0.05)
    proc.kill()
    raise run_e2e.Failure("no process 1 of the new PID namespace under unshare %d" % proc.pid)


def test_containers(pysample, python, tmp):
    """From the host, a process in its own PID namespace: its threads are found under the ids the
    host gives them (the interpreter records the namespace's), in every mode."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise run_e2e.Skip("needs root and unshare to make a PID namespace")
    m = markers("container_app.py")
    proc, pid, path = container_target(python, 300)
    try:
        time.sleep(0.3)
        ids = namespace_tids(pid)
        print("threads of %d, host id: namespace id: %r" % (pid, ids))
        check(ids.get(pid) == 1, "the interpreter is not process 1 of its namespace: %r" % ids)
        worker = [tid for tid in ids if tid != pid]
        check(len(worker) == 1, "expected two threads: %r" % ids)
        worker = worker[0]

        dump = run_pysample(pysample, ["dump", "--pid", str(pid)])
        print(dump.stdout)
        check(dump.returncode == 0, "dump failed with %d" % dump.returncode)
        for tid, inner in ids.items():
            check(re.search(r"^Thread %d \(%d in its PID namespace\) " % (tid, inner), dump.stdout, re.M),
                  "dump does not show thread %d as %d in its namespace" % (tid, inner))
        check(re.search(r'^Thread %d .*"MainThread" \(idle\)' % pid, dump.stdout, re.M),
              "the main thread is not shown idle under its host id")
        check(re.search(r'^Thread %d .*"container-worker" \(active\)' % worker, dump.stdout, re.M),
              "the worker is not shown active under its host id and name")
        check(re.search(r'line (%d|%d), in spin$' % (m["spin"] - 1, m["spin"]), dump.stdout, re.M),
              "dump does not show the worker's stack")
        as_json = run_pysample(pysample, ["dump", "--json", "--pid", str(pid)])
        threads = {t["id"]: t for t in json.loads(as_json.stdout)["threads"]}
        check(set(threads) == set(ids) and all(threads[t]["namespace_id"] == ids[t] for t in ids),
              "dump --json ids: %r" % {t: threads[t].get("namespace_id") for t in threads})

        worker_root = "thread %d (container-worker)" % worker
        main_root = "thread %d (MainThread)" % pid
        # CPU time, and wall-clock time where the thread must be stopped: a loaded machine keeps
        # a stopped thread waiting for a core, and CPU time counts what it ran.
        def worker_spins(stacks):
            return sum(c for frames, c in stacks if root_label(frames) == worker_root and
                       any(f[0] == "spin" for f in frames))

        for extra in ([], ["--idle"], ["--blocking", "--idle"], ["--native", "--idle"], ["--gil"]):
            stacks, result = record_until(pysample, pid, tmp, extra + ["--threads"],
                                          lambda stacks: worker_spins(stacks) >= 10, duration=1.5)
            roots = {root_label(frames) for frames, _ in stacks}
            spins = worker_spins(stacks)
            print("%s: roots %r, %d of %d samples in spin" % (" ".join(extra), sorted(roots), spins, total(stacks)))
            check(spins >= 0.3 * total(stacks) and spins >= 10, "%s: the worker's samples are missing" %
                  (" ".join(extra) or "record"))
            expected = {worker_root, main_root} if "--idle" in extra else {worker_root}
            check(roots == expected, "%s: thread roots %r, expected %r" % (" ".join(extra), roots, expected))
            if "--native" in extra:
                # A thread that a loaded machine does not let stop within the bound is kept
                # Python-only, and counted: every other stack must merge.
                merged = re.search(r"native stacks: (\d+) of (\d+) merged", result.stderr)
                unreadable = re.search(r"(\d+) registers unreadable", result.stderr)
                read = int(merged.group(2)) - (int(unreadable.group(1)) if unreadable else 0) if merged else 0
                check(merged and read > 0 and int(merged.group(1)) >= 0.9 * read,
                      "--native merged too few stacks: %s" % (merged.group(0) if merged else result.stderr))

        top = subprocess.run([pysample, "top", "--pid", str(pid), "--interval", "0.5", "--duration", "1.6"],
                             capture_output=True, text=True, timeout=60)
        print(top.stdout[-1500:])
        check(top.returncode == 0 and re.search(r"\bspin \(", top.stdout), "top does not show the worker's function")

        stacks, _ = record(pysample, pid, tmp, ["--subprocesses"], duration=2)
        children = [c for c in children_of(pid)]
        check(len(children) == 1, "the app's forked child is missing: %r" % children)
        child_root = [root_label(frames) for frames, _ in stacks if any(f[0] == "child_spin" for f in frames)]
        check(child_root and all(r.startswith("process %d " % children[0]) for r in child_root),
              "the forked child's samples are not under its host pid %d: %r" % (children[0], sorted(set(child_root))))
    finally:
        proc.kill()  # --kill-child: the namespace's process 1 goes too, and its own child with it
        proc.wait()


# --- subinterpreters -----------------------------------------------------------------------------------


def test_subinterpreters(pysample, python, tmp):
    """A thread runs code in a sub-interpreter that the main thread created, while the main thread
    computes: each thread keeps its own stack and id, the sub-interpreter's frames on top of the
    call that entered it, after a "[interpreter N]" marker. Before 3.10 the interpreter records
    only the thread that created it, and the summary says so."""
    version = python_version(python)
    probe = subprocess.run(interpreter_command(python, "sleeper.py")[0][:-1] + [
        "-c", "import sys\ntry:\n import _interpreters\nexcept ImportError:\n import _xxsubinterpreters"],
        capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise run_e2e.Skip("this interpreter has no sub-interpreter module")
    proc_command, path = interpreter_command(python, "subinterpreters.py")
    proc = subprocess.Popen(proc_command + ["30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        check(line.startswith("ready "), "subinterpreters.py did not start: %r" % line)
        runner = int(line.split()[1])
        known = version >= (3, 10)
        stacks, result = record(pysample, proc.pid, tmp, ["--threads", "--idle"], duration=2)
        main_root = "thread %d (MainThread)" % proc.pid
        subs = [(frames, c) for frames, c in stacks if frames[-1][0] == "sub_busy"]
        mains = [(frames, c) for frames, c in stacks if frames[-1][0] == "main_busy"]
        print("%d samples in sub_busy, %d in main_busy" % (total(subs), total(mains)))
        check(total(subs) >= 20, "the sub-interpreter's code has %d samples" % total(subs))
        check(total(mains) >= 20 or version < (3, 12), "the main thread's code has %d samples" % total(mains))
        for frames, _ in mains:
            check(root_label(frames) == main_root and not any(f[0].startswith("[interpreter") for f in frames),
                  "main_busy outside the main thread's stack: %r" % (frames,))
        for frames, _ in subs:
            names = [f[0] for f in frames]
            marker = [n for n in names if re.fullmatch(r"\[interpreter \d+\]", n)]
            check(len(marker) == 1 and names[names.index(marker[0]) + 1] == "<module>",
                  "no marker where the sub-interpreter's frames begin: %r" % (names,))
            if known:
                check(root_label(frames) == "thread %d (sub-runner)" % runner, "sub-interpreter stack under %r, not "
                      "the thread %d that runs it" % (root_label(frames), runner))
                inner = names[:names.index(marker[0])]
                check("run_in_sub" in inner, "the sub-interpreter's frames are not on the call that entered it: %r"
                      % (names,))
            else:
                check(frames[1][0] == marker[0], "before 3.10 a sub-interpreter's stack starts at its marker: %r"
                      % (names,))
        if not known:
            check("shown under the thread that created the interpreter" in result.stderr,
                  "the summary does not say whose thread the sub-interpreter's stacks are under")
            return
        dump = run_pysample(pysample, ["dump", "--pid", str(proc.pid)])
        print(dump.stdout)
        check(re.search(r'^Thread %d "sub-runner" .*\(interpreter \d+\):' % runner, dump.stdout, re.M),
              "dump does not show the thread running the sub-interpreter")
        if version >= (3, 12):
            stacks, result = record(pysample, proc.pid, tmp, ["--native", "--threads", "--idle"], duration=1.5)
            merged = re.search(r"native stacks: (\d+) of (\d+) merged", result.stderr)
            check(merged and int(merged.group(1)) >= 0.9 * int(merged.group(2)), "--native: %s" %
                  (merged.group(0) if merged else result.stderr))
            check(any(f[-1][0] == "sub_busy" or any(x[0] == "sub_busy" for x in f) for f, _ in stacks),
                  "--native lost the sub-interpreter's frames")
    finally:
        proc.kill()
        proc.wait()


# --- exec: followed into the new program ------------------------------------------------------------------


def test_exec(pysample, python, tmp):
    """A target that execs into another Python program is followed: both programs' functions are
    in the profile, with --pid and in launch mode."""
    interpreter_command(python, "exec_target.py")  # into the chroot too, next to exec_into.py
    for launch in (False, True):
        out = os.path.join(tmp, "exec.txt")
        if launch:
            command, _ = interpreter_command(python, "exec_into.py")
            result = run_pysample(pysample, ["record", "--idle", "-f", "collapsed", "-o", out, "--"] + command +
                                  ["1", "1.5"])
        else:
            with Workload(python, "exec_into.py", 1, 1.5) as workload:
                result = run_pysample(pysample, ["record", "--idle", "--pid", str(workload.pid), "--duration", "5",
                                                 "-f", "collapsed", "-o", out])
        check(result.returncode == 0, "record failed with %d" % result.returncode)
        stacks = parse_collapsed(out)
        functions = {f[0] for frames, _ in stacks for f in frames}
        before = sum(c for frames, c in stacks if frames[-1][0] == "before_exec")
        after = sum(c for frames, c in stacks if frames[-1][0] == "after_exec")
        print("%s: %d samples before the exec, %d after" % ("launch" if launch else "--pid", before, after))
        check(before >= 20 and after >= 30, "%s: before_exec has %d samples, after_exec %d; functions %r" %
              ("launch" if launch else "--pid", before, after, sorted(functions)))


# --- replaced: the interpreter's files gone from the disk ------------------------------------------------


def interpreter_files(python):
    """(the interpreter's executable, sys.prefix, the libpython it maps or None for a static build),
    for a copy of it whose files can then be deleted."""
    command = interpreter_command(python, "sleeper.py")[0][:-1]
    probe = "import sys; sys.stdout.write('%s %s ' % (sys.executable, sys.prefix)); " \
            "sys.stdout.write(' '.join(set(l.split()[-1] for l in open('/proc/self/maps') if 'libpython' in l)))"
    out = subprocess.run(command + ["-c", probe], capture_output=True, text=True, timeout=30).stdout.split()
    return out[0], out[1], (out[2] if len(out) > 2 else None)


def test_replaced(pysample, python, tmp):
    """The interpreter's executable (static builds) or libpython (shared ones) is copied, run, and
    the copy replaced on disk by another file, as a package upgrade does: pysample reads the file
    the process still maps, says it changed, and profiles as usual."""
    executable, prefix, library = interpreter_files(python)
    root = python.split("::", 1)[0] if "::" in python else ""
    stage = os.path.join(root + "/tmp", "pysample-replaced-%d" % os.getpid())
    os.makedirs(os.path.join(stage, "lib"), exist_ok=True)
    try:
        copy = os.path.join(stage, os.path.basename(executable))
        shutil.copy2(root + executable, copy)
        inner = copy[len(root):]
        env = dict(os.environ, PYTHONHOME=prefix)
        sleeper = os.path.join(run_e2e.WORKLOADS, "sleeper.py")
        if root:
            sleeper = interpreter_command(python, "sleeper.py")[1]
            command = ["chroot", root, "env", "PYTHONHOME=" + prefix, inner, sleeper, "60"]
        elif library:
            shutil.copy2(library, os.path.join(stage, "lib", os.path.basename(library)))
            loader = "/lib64/ld-linux-x86-64.so.2"
            command = [loader, "--inhibit-rpath", copy, "--library-path", os.path.join(stage, "lib"), copy, sleeper,
                       "60"]
        else:
            command = [copy, sleeper, "60"]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            check(line.strip() == "ready", "the copied interpreter did not start: %r %s" %
                  (line, proc.stderr.read() if proc.poll() is not None else ""))
            replaced = os.path.join(stage, "lib", os.path.basename(library)) if library and not root else copy
            # A new file renamed over the old one: the process keeps the old, deleted one.
            shutil.copy2(replaced, replaced + ".new")
            os.replace(replaced + ".new", replaced)
            with open("/proc/%d/maps" % proc.pid) as maps:
                check(any(replaced in l and "(deleted)" in l for l in maps), "the replaced file is not deleted")
            time.sleep(0.2)
            m = markers("sleeper.py")
            for extra in ([], ["--native"]):
                dump = run_pysample(pysample, ["dump", "--pid", str(proc.pid)] + extra)
                print(dump.stdout)
                check(dump.returncode == 0, "dump %s failed with %d" % (" ".join(extra), dump.returncode))
                check("line %d, in inner" % m["sleep"] in dump.stdout, "dump %s lacks the sleeper's stack" %
                      " ".join(extra))
                check("was deleted or replaced on disk" in dump.stderr, "pysample does not say the file changed")
            stacks, result = record(pysample, proc.pid, tmp, ["--idle"], duration=1)
            check(total(stacks) >= 50 and all(frames[-1][0] == "inner" for frames, _ in stacks),
                  "the recording of the replaced interpreter is wrong: %r" % stacks[:3])
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --- server: thread-per-request under load -----------------------------------------------------------------


class Load:
    """Clients sending requests, alternately to the light and the heavy handler, until stopped."""

    def __init__(self, port, clients=4):
        self.port, self.running, self.requests, self.failures = port, True, 0, 0
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]
        for thread in self.threads:
            thread.start()

    def client(self, i):
        path = "/heavy" if i % 2 else "/light"
        while self.running:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=10).read()
                self.requests += 1
            except OSError:
                self.failures += 1

    def stop(self):
        self.running = False
        for thread in self.threads:
            thread.join()


def server_stats(port):
    return json.loads(urllib.request.urlopen("http://127.0.0.1:%d/stats" % port, timeout=10).read().decode())


# The goal, on top of which a few stacks are allowed to a short recording on a loaded machine.
REJECTED_SHARE = 0.005
REJECTED_ALLOWANCE = 5


def test_server(pysample, python, tmp):
    """A thread-per-request server under steady load: at 100 Hz and at the maximum rate, under 0.5%
    of the stacks are rejected, and the heavy handler's share of the handlers' samples is its share
    of the CPU time the server measures them to take."""
    command, _ = interpreter_command(python, "request_server.py")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        check(line.startswith("ready "), "request_server.py did not start: %r" % line)
        port = int(line.split()[1])
        load = Load(port)
        try:
            time.sleep(0.5)
            for extra, duration in ((["--rate", "100"], 4), (["--rate", "max"], 2)):
                def measured_recording(seconds):
                    before = server_stats(port)
                    stacks, result = record(pysample, server.pid, tmp, extra + ["--nolineno"], duration=seconds)
                    return before, stacks, result, server_stats(port)

                before, stacks, result, after = run_e2e.longer_until(
                    measured_recording, lambda measured: sum(c for frames, c in measured[1] if frames[-1][0] in
                                                             ("handle_light", "handle_heavy")) >= 50, duration)
                rejected, read = rejected_stacks(result)
                allowed = REJECTED_SHARE * read + REJECTED_ALLOWANCE
                print("%s: %d of %d stacks rejected (%d allowed)" % (" ".join(extra), rejected, read, allowed))
                check(rejected <= allowed, "%s: %d of %d stacks rejected" % (" ".join(extra), rejected, read))
                light = sum(c for frames, c in stacks if frames[-1][0] == "handle_light")
                heavy = sum(c for frames, c in stacks if frames[-1][0] == "handle_heavy")
                spent = {k: after[k] - before[k] for k in after}
                truth = spent["handle_heavy"] / max(spent["handle_heavy"] + spent["handle_light"], 1e-9)
                share = heavy / max(light + heavy, 1)
                print("%s: heavy handler %.1f%% of %d handler samples, %.1f%% of their CPU time" %
                      (" ".join(extra), 100 * share, light + heavy, 100 * truth))
                check(light + heavy >= 50, "only %d samples in the handlers" % (light + heavy))
                # time.thread_time (3.7+) measures CPU time. Short threads that hand the GIL over to
                # each other are caught runnable a little more for their CPU time in the longer
                # handler: 3 to 7 points at 100 Hz, more at the maximum rate on a loaded machine.
                if python_version(python) >= (3, 7) and "max" not in extra:
                    allowed = binomial_tolerance(truth, light + heavy, floor=0.1)
                    check(abs(share - truth) <= allowed, "%s: the heavy handler has %.1f%% of the samples, for %.1f%%"
                          " of the CPU time" % (" ".join(extra), 100 * share, 100 * truth))
        finally:
            load.stop()
        check(load.requests > 100, "only %d requests served" % load.requests)
    finally:
        server.kill()
        server.wait()


# --- cpu_mode: runnable is not running -------------------------------------------------------------------------


def cpu_times(pid):
    """{tid: nanoseconds on a CPU} of every thread of `pid` (schedstat)."""
    times = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as schedstat:
                times[int(tid)] = int(schedstat.read().split()[0])
        except (OSError, ValueError):
            pass
    return times


def test_cpu_mode(pysample, python, tmp):
    """90 threads that wake every 10 ms for a moment are runnable (waiting for a core, or for the
    GIL's handover) far more often than they run. In the default CPU-time mode their share of the
    samples is their share of the CPU time the kernel counted, which a count of runnable threads
    overstates three times over."""
    with Workload(python, "mostly_sleeping.py", 30) as workload:
        time.sleep(1)
        before = cpu_times(workload.pid)
        stacks, _ = record(pysample, workload.pid, tmp, ["--threads"], duration=4)
        after = cpu_times(workload.pid)
    spent = {tid: after[tid] - before.get(tid, 0) for tid in after}
    busy = max(spent, key=spent.get)
    nappers_cpu = sum(v for t, v in spent.items() if t not in (busy, workload.pid))
    truth = nappers_cpu / max(nappers_cpu + spent[busy], 1)
    napping = sum(c for frames, c in stacks if "(napper-" in root_label(frames))
    count = total(stacks)
    share = napping / max(count, 1)
    print("the 90 napping threads used %.1f%% of the CPU time and got %.1f%% of %d samples" %
          (100 * truth, 100 * share, count))
    check(count >= 30, "only %d samples" % count)
    allowed = binomial_tolerance(truth, count, floor=0.05)
    check(abs(share - truth) <= allowed, "the napping threads got %.1f%% of the samples for %.1f%% of the CPU time"
          % (100 * share, 100 * truth))


# --- retitle: a new title is no exec -----------------------------------------------------------------------------


def test_retitle(pysample, python, tmp):
    """Workers that retitle themselves every 50 ms (setproctitle) stay one process root each with
    --subprocesses: a new title is not taken for an exec."""
    with Workload(python, "retitle.py", 8) as workload:
        stacks, result = record(pysample, workload.pid, tmp, ["--subprocesses"], duration=3)
    roots = {}
    for frames, count in stacks:
        match = re.match(r"process (\d+) ", root_label(frames))
        check(match, "stack without a process root: %r" % (frames[:2],))
        roots.setdefault(int(match.group(1)), set()).add(root_label(frames))
    workers = {pid: labels for pid, labels in roots.items() if pid != workload.pid}
    print("process roots: %r" % roots)
    check(len(workers) == 2, "expected the two workers' roots: %r" % roots)
    for pid, labels in workers.items():
        check(len(labels) == 1, "worker %d split into %d roots: %r" % (pid, len(labels), sorted(labels)))
    check(re.search(r"sampled 3 Python processes", result.stderr), "the summary counts other than 3 processes")


# --- achieved_time: a sample stands for the time it stands for -------------------------------------


def test_achieved_time(pysample, python, tmp):
    """At a rate the machine cannot reach (--native stops the thread for each sample), the text and
    pstats outputs turn samples into seconds at the rate reached: their times add up to the run."""
    base = os.path.join(tmp, "achieved")
    with Workload(python, "sleeper.py", 60) as workload:
        time.sleep(0.2)
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "2", "--idle", "--native",
                                         "--rate", "100000", "-o", base + ".prof.txt", "-o", base + ".pstats"])
    check(result.returncode == 0, "record failed with %d" % result.returncode)
    samples, _ = summary(result)
    duration = float(re.search(r"samples in ([\d.]+) s", result.stderr).group(1))
    check(samples < 0.5 * 100000 * duration, "the machine reached the rate asked: %d samples" % samples)
    with open(base + ".prof.txt") as text:
        header = re.search(r"(\d+) samples in ([\d.]+) seconds", text.read())
    check(header and abs(float(header.group(2)) - duration) <= 0.05 * duration,
          "the text header says %r for a run of %.2f s" % (header.group(0) if header else None, duration))
    check_stats = ("import pstats, sys; s = pstats.Stats(sys.argv[1]); "
                   "print(max(v[3] for v in s.stats.values()))")
    cumulative = float(subprocess.run([sys.executable, "-c", check_stats, base + ".pstats"], capture_output=True,
                                      text=True, timeout=60).stdout)
    print("%d samples in %.2f s; the outermost function's cumulative time: %.2f s" % (samples, duration, cumulative))
    check(abs(cumulative - duration) <= 0.05 * duration, "pstats makes %.2f s of a %.2f s run" % (cumulative, duration))


# --- starved: runnable, but given no CPU ---------------------------------------------------------------


class CpuQuota:
    """A control group that lets its processes run 2 ms of each second (cgroup v2's cpu.max, or v1's
    cpu.cfs_quota_us): runnable, they wait for a CPU most of the time, as in a throttled container."""

    def __init__(self, name):
        self.path = None
        for root, v2 in (("/sys/fs/cgroup", True), ("/sys/fs/cgroup/cpu", False)):
            limit = os.path.join(root, "cpu.max" if v2 else "cpu.cfs_quota_us")
            if v2 and not os.path.exists(os.path.join(root, "cgroup.controllers")):
                continue
            if not v2 and not os.path.exists(limit):
                continue
            path = os.path.join(root, name)
            try:
                os.mkdir(path)
                if v2:
                    with open(os.path.join(path, "cpu.max"), "w") as f:
                        f.write("2000 1000000")
                else:
                    with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                        f.write("1000000")
                    with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                        f.write("2000")
                self.path = path
                return
            except OSError as error:
                print("no CPU quota under %s: %s" % (root, error))
                if os.path.isdir(path):
                    os.rmdir(path)

    def add(self, pid):
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        if self.path:
            with open(os.path.join(os.path.dirname(self.path), "cgroup.procs"), "w") as f:
                for line in open(os.path.join(self.path, "cgroup.procs")):
                    f.write(line)
            os.rmdir(self.path)


def test_starved(pysample, python, tmp):
    """A thread that is runnable but given no CPU (a throttled CPU quota) does not stop within the
    100 ms a pause waits: the summary says it waited for a CPU, not that it was in an
    uninterruptible wait, and pysample ends on time."""
    if os.geteuid() != 0:
        raise run_e2e.Skip("needs root to make a control group")
    quota = CpuQuota("pysample-starved-%d" % os.getpid())
    if quota.path is None:
        raise run_e2e.Skip("no control group with a CPU quota can be made here")
    try:
        with Workload(python, "split.py", 60) as workload:
            quota.add(workload.pid)
            time.sleep(1.5)  # the quota is spent: the thread waits for the next period
            for extra in (["--native"], ["--blocking"]):
                started = time.time()
                _, result = record(pysample, workload.pid, tmp, extra + ["--idle", "--rate", "20"], duration=2)
                check(time.time() - started < 6, "%s took %.1f s for a 2 s run" % (extra[0], time.time() - started))
                line = re.search(r"did not stop within 100 ms and was read as it was: (.*)", result.stderr)
                check(line and "waiting for a CPU" in line.group(1) and "uninterruptible" not in line.group(1),
                      "%s: the summary does not say the thread waited for a CPU: %r" %
                      (extra[0], line.group(0) if line else result.stderr))
                check_released(workload.pid, extra[0])
    finally:
        quota.remove()


# --- greenlets --------------------------------------------------------------------------------------------------


def test_greenlets(pysample, python, tmp):
    """Three greenlets taking 1:2:3 of a thread's time, switched all the time: their stacks are read
    whole (few rejected) and in the proportions the program measures, with and without --blocking;
    --native merges them."""
    command = interpreter_command(python, "sleeper.py")[0][:-1]
    if subprocess.run(command + ["-c", "import greenlet"], capture_output=True, timeout=30).returncode != 0:
        raise run_e2e.Skip("this interpreter has no greenlet module (Debian: python3-greenlet)")
    runs = (["--nolineno"], ["--blocking", "--nolineno"], ["--native", "--nolineno"])
    with Workload(python, "greenlet_workers.py", 2.2 * len(runs) + 1) as workload:
        recorded = [record(pysample, workload.pid, tmp, extra, duration=2) + (extra,) for extra in runs]
        line = workload.proc.stdout.readline()
    check(line.startswith("shares "), "the workload did not report its shares: %r" % line)
    truth = dict(item.split("=") for item in line.split()[1:])
    for stacks, result, extra in recorded:
        count = total(stacks)
        rejected, read = rejected_stacks(result)
        check(rejected <= 0.01 * read + 2, "%s: %d of %d stacks rejected" % (" ".join(extra), rejected, read))
        for name, expected in truth.items():
            expected = float(expected)
            share = sum(c for frames, c in stacks if any(f[0] == name for f in frames)) / max(count, 1)
            print("%s: %s %.1f%% of %d samples, %.1f%% of the time" % (" ".join(extra), name, 100 * share, count,
                                                                        100 * expected))
            check(abs(share - expected) <= binomial_tolerance(expected, count),
                  "%s: %s has %.1f%% of the samples for %.1f%% of the time" %
                  (" ".join(extra), name, 100 * share, 100 * expected))
        if "--native" in extra:
            merged = re.search(r"native stacks: (\d+) of (\d+) merged", result.stderr)
            check(merged and int(merged.group(1)) >= 0.9 * int(merged.group(2)), "--native: %s" %
                  (merged.group(0) if merged else result.stderr))


# --- pypy -------------------------------------------------------------------------------------------------------


def test_pypy(pysample, _python, tmp):
    """A PyPy process is named as such: pysample reads CPython only (exit code 6)."""
    pypy = shutil.which("pypy3")
    if pypy is None:
        raise run_e2e.Skip("no pypy3 (Debian: pypy3)")
    proc = subprocess.Popen([pypy, os.path.join(run_e2e.WORKLOADS, "sleeper.py"), "60"], stdout=subprocess.PIPE,
                            text=True)
    try:
        check(proc.stdout.readline().strip() == "ready", "pypy3 did not start the sleeper")
        for args in (["dump", "--pid", str(proc.pid)], ["record", "--pid", str(proc.pid), "-d", "1"]):
            result = run_pysample(pysample, args)
            check(result.returncode == 6 and "PyPy" in result.stderr and "CPython" in result.stderr,
                  "%s: exit %d, %r" % (args[0], result.returncode, result.stderr))
    finally:
        proc.kill()
        proc.wait()
    result = run_pysample(pysample, ["record", "-d", "1", "-o", os.path.join(tmp, "p.svg"), "--", pypy,
                                     os.path.join(run_e2e.WORKLOADS, "sleeper.py"), "5"])
    check(result.returncode == 6 and "PyPy" in result.stderr, "launch mode: exit %d, %r" %
          (result.returncode, result.stderr))


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
