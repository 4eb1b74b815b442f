#!/usr/bin/env python3
"""End-to-end: what pysample writes and says can be trusted, whatever the target or the machine.

Usage: trust_test.py --pysample BIN [--python INTERPRETER] TEST

- escapes: an interpreter at a path with an escape sequence, a newline and a carriage return,
  running with such an argument: `dump` finds its files (/proc/PID/maps writes the newline as
  \\012) and prints both escaped; so does an error message naming such a path.
- empty_filename: a frame whose code has an empty file name still shows a location ("?"), so a
  function named like a location cannot pass for one.
- tracer: a target that another process (a debugger) traces: `dump` and `record --blocking` read it
  without stopping that thread, and say which process holds it.
- refusals: the kernel's refusals explained by their real cause: a process that is not dumpable,
  pysample as root without CAP_SYS_PTRACE, and a target outside pysample's user namespace.
- closed_pipe: `-o - -o other.svg` with standard output's reader gone: other.svg is still written,
  and pysample is not killed by SIGPIPE.
- counts: a thread list that cannot be read is counted apart from the stacks rejected, and the
  thread samples the summary reports are the ones the outputs hold.
- no_python: a launched command that never runs Python exits with the not-Python code (5), and a
  command that ends at once is never called a zombie.
- pstats_keys: the pstats keys are cProfile's own (file, first line, co_name), with no call counts.
- numpy_native: native code without symbols (Debian's numpy) is grouped by the function starts its
  unwind tables give, `library+0xSTART`, not spread over one frame per address.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e  # noqa: E402
from run_e2e import (Skip, Workload, check, interpreter_command, markers, parse_collapsed,  # noqa: E402
                     python_version, run_pysample)

HERE = os.path.dirname(os.path.abspath(__file__))
EXIT_PERMISSION = 4
EXIT_NOT_PYTHON = 5
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")


def summary_counts(stderr):
    """(samples, errors) from the summary line."""
    found = re.search(r"(\d+) samples in [\d.]+ s .*?, (\d+) errors", stderr)
    check(found, "no summary with the sample and error counts: %r" % stderr)
    return int(found.group(1)), int(found.group(2))


def static_python():
    """An interpreter that runs from any path (no shared libpython found through its own)."""
    for candidate in ("/usr/bin/python3.11", "/usr/bin/python3"):
        if os.path.exists(candidate):
            return candidate
    raise Skip("no /usr/bin/python3 to copy to a hostile path")


def test_escapes(pysample, _python, tmp):
    weird = os.path.join(tmp, "bin\x1b[31m\nX\r")
    os.makedirs(weird)
    python = os.path.join(weird, "python3")
    shutil.copy2(static_python(), python)
    workload = os.path.join(run_e2e.WORKLOADS, "sleeper.py")
    argument = "arg\x1b]0;owned\x07\x9b"
    proc = subprocess.Popen([python, workload, "30", argument], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        check(proc.stdout.readline().strip() == b"ready", "the copied interpreter did not start: %r" %
              (proc.stderr.read() if proc.poll() is not None else ""))
        with open("/proc/%d/maps" % proc.pid) as maps:
            check("\\012" in maps.read(), "the kernel does not write the newline in the path as \\012")
        result = subprocess.run([pysample, "dump", "--pid", str(proc.pid)], capture_output=True, timeout=60)
        print(result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace"))
        check(result.returncode == 0, "dump of an interpreter at a path with a newline failed with %d" %
              result.returncode)
        out = result.stdout.decode("utf-8")
        check(not CONTROL.search(out) and "\x9b" not in out, "dump printed control characters: %r" % out[:300])
        check("bin\\x1b[31m\\x0aX\\x0d/python3" in out, "dump does not name the interpreter's path escaped: %r" %
              out[:300])
        check("arg\\x1b]0;owned\\x07" in out, "dump does not show the command line escaped: %r" % out[:300])
        as_json = subprocess.run([pysample, "dump", "--json", "--pid", str(proc.pid)], capture_output=True,
                                 timeout=60)
        check(as_json.returncode == 0 and json.loads(as_json.stdout.decode("utf-8")),
              "dump --json failed with %d" % as_json.returncode)
    finally:
        proc.kill()
        proc.wait()
    # An error naming a path with a newline stays one line.
    result = subprocess.run([pysample, "record", "--pid", "1", "-o", os.path.join(weird, "missing", "x.svg")],
                            capture_output=True, timeout=30)
    err = result.stderr.decode("utf-8", "replace")
    print(err)
    check(result.returncode == 8 and len(err.strip().splitlines()) == 1 and "\\x0aX\\x0d" in err,
          "the error naming a path with a newline is not one escaped line: %r" % err)


def test_empty_filename(pysample, python, tmp):
    m = markers("empty_filename.py")
    out = os.path.join(tmp, "profile.txt")
    with Workload(python, "empty_filename.py") as workload:
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "1", "--idle", "-o", out])
        check(result.returncode == 0, "record failed with %d" % result.returncode)
    with open(out) as f:
        lines = f.read().splitlines()
    frames = [frame for line in lines for frame in line.rpartition(" ")[0].split(";") if frame.startswith("evil")]
    check(frames, "no frame of the function compiled from an empty file name: %r" % lines[:3])
    name = "evil (/etc/passwd:1)" if python_version(python) >= (3, 8) else "evil"
    for frame in set(frames):
        check(re.match(r"^%s \(\?(:\d+)?\)$" % re.escape(name), frame),
              "a frame without a file shows no location mark: %r" % frame)
    print("frames of the file-less function: %r" % sorted(set(frames)))
    check(any("(%s:%d);evil" % (workload.path, m["call"]) in line for line in lines),
          "the file-less function is not under its caller")


def test_tracer(pysample, python, tmp):
    holder_script = os.path.join(HERE, "ptrace_holder.py")
    with Workload(python, "threads.py", 30) as workload:
        holder = subprocess.Popen([sys.executable, holder_script, str(workload.pid), "fake-debugger"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            check(holder.stdout.readline().strip() == "held", "the ptrace holder could not seize the target")
            result = run_pysample(pysample, ["dump", "--pid", str(workload.pid)])
            check(result.returncode == 0, "dump of a traced target failed with %d" % result.returncode)
            check("fake-debugger" in result.stderr and "read without stopping" in result.stderr,
                  "dump does not say that another process holds a thread: %r" % result.stderr)
            check(result.stdout.count("Thread ") >= 2, "dump shows fewer threads than the target has: %s" %
                  result.stdout)
            out = os.path.join(tmp, "profile.txt")
            # --idle: in CPU time the main thread, which waits in join(), would not be stopped at all.
            result = run_pysample(pysample, ["record", "--blocking", "--idle", "--pid", str(workload.pid), "-d", "1",
                                             "-o", out])
            check(result.returncode == 0, "record --blocking of a traced target failed with %d" % result.returncode)
            check(re.search(r"could not be stopped because process %d \(fake-debugger\) traces it" % holder.pid,
                            result.stderr), "record does not name the tracer: %r" % result.stderr)
            check(parse_collapsed(out), "nothing recorded")
            with open("/proc/%d/status" % workload.pid) as status:
                tracer = re.search(r"TracerPid:\s+(\d+)", status.read()).group(1)
            check(int(tracer) == holder.pid, "the other tracer lost the target (TracerPid %s)" % tracer)
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)


def expect_refusal(pysample, args, words, what, prefix=()):
    result = subprocess.run(list(prefix) + [pysample] + args, capture_output=True, text=True, timeout=60)
    print("$ %s -> exit %d\n%s" % (what, result.returncode, result.stderr))
    check(result.returncode == EXIT_PERMISSION, "%s: exit %d, expected %d" % (what, result.returncode,
                                                                               EXIT_PERMISSION))
    for word in words:
        check(word in result.stderr, "%s: the message does not say %r" % (what, word))
    check(len(result.stderr.strip().splitlines()) == 1, "%s: not one line" % what)


def test_refusals(pysample, _python, tmp):
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare"):
        raise Skip("needs root, setpriv and unshare")
    # A process of nobody's that made itself not dumpable, read by pysample as nobody.
    undumpable = subprocess.Popen(NOBODY + [sys.executable, "-c", "import ctypes, sys, time; "
                                            "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print('ready'); "
                                            "sys.stdout.flush(); time.sleep(60)"],
                                  stdout=subprocess.PIPE, text=True)
    nobody_sleeper = subprocess.Popen(NOBODY + [sys.executable, "-c", "import time; time.sleep(60)"])
    root_sleeper = subprocess.Popen(["sleep", "60"])
    try:
        check(undumpable.stdout.readline().strip() == "ready", "the undumpable process did not start")
        expect_refusal(pysample, ["dump", "--pid", str(undumpable.pid)], ["is not dumpable", "PR_SET_DUMPABLE"],
                       "dump of an undumpable process as its own user", prefix=NOBODY)
        # Root without CAP_SYS_PTRACE, reading another user's process.
        no_cap = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"]
        expect_refusal(pysample, ["dump", "--pid", str(nobody_sleeper.pid)],
                       ["runs as root, but without CAP_SYS_PTRACE"], "dump as root without CAP_SYS_PTRACE",
                       prefix=no_cap)
        # Root of a new user namespace, reading a process of the initial one. The kernel makes no
        # user namespace for a process in a chroot: then there is nothing to read from one.
        if subprocess.run(["unshare", "--user", "--map-root-user", "true"], stderr=subprocess.DEVNULL).returncode == 0:
            expect_refusal(pysample, ["dump", "--pid", str(root_sleeper.pid)], ["belongs to another user namespace"],
                           "dump from another user namespace", prefix=["unshare", "--user", "--map-root-user"])
        else:
            print("skipped: dump from another user namespace (this system makes none here, e.g. in a chroot)")
    finally:
        for proc in (undumpable, nobody_sleeper, root_sleeper):
            proc.kill()
            proc.wait()


def test_closed_pipe(pysample, python, tmp):
    other = os.path.join(tmp, "other.svg")
    for stdout in (["-o", "-"], ["-f", "collapsed", "-o", "/dev/stdout"]):
        with Workload(python, "split.py", 30) as workload:
            # --idle: every sample has the thread, running or not, so there is a profile to write
            # however little CPU a loaded machine gives the workload.
            proc = subprocess.Popen([pysample, "record", "--pid", str(workload.pid), "-d", "1", "--idle"] + stdout +
                                    ["-o", other],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            proc.stdout.close()  # the reader is gone before pysample writes: like `| head -1` done reading
            _, err = proc.communicate(timeout=60)
        what = " ".join(stdout)
        print("%s:\n%s" % (what, err))
        check(proc.returncode == 0, "%s: pysample exited %d (%s) when its standard output's reader went away" %
              (what, proc.returncode, "killed by SIGPIPE" if proc.returncode == -signal.SIGPIPE else "an error"))
        check("until its reader closed the pipe" in err, "%s: the summary does not say that standard output was cut "
                                                          "short" % what)
        check(os.path.getsize(other) > 0 and "wrote %s (flamegraph)" % other in err,
              "%s: the other output was not written" % what)
        os.unlink(other)


def test_counts(pysample, python, tmp):
    if python_version(python) < (2, 7):
        raise Skip("needs ctypes.pythonapi")
    base = os.path.join(tmp, "profile")
    with Workload(python, "corrupt_thread_list.py", 3) as workload:
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "1.5", "--idle",
                                         "-o", base + ".txt", "-o", base + ".svg"])
        out, err = workload.proc.communicate(timeout=30)
        check(workload.proc.returncode == 0 and out.strip() == "done", "the workload failed: %r %s" % (out, err))
    check(result.returncode == 0, "record failed with %d" % result.returncode)
    samples, errors = summary_counts(result.stderr)
    lists = re.search(r"(\d+) samples? failed because the list of threads could not be read", result.stderr)
    check(lists, "the unreadable thread list is not counted apart: %r" % result.stderr)
    check(int(lists.group(1)) == errors == samples, "%s, but %d errors in %d samples" %
          (lists.group(0), errors, samples))
    rejected = re.search(r"(\d+) of (\d+) thread stacks rejected", result.stderr)
    check(not rejected or int(rejected.group(1)) <= int(rejected.group(2)), "counts that do not add up: %s" %
          (rejected and rejected.group(0)))
    # Now a readable run: the thread samples the summary reports are those the outputs hold.
    with Workload(python, "threads.py", 30) as workload:
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "1", "-o", base + ".txt",
                                         "-o", base + ".svg"])
    check(result.returncode == 0, "record failed with %d" % result.returncode)
    held = re.search(r"the profile holds (\d+) thread samples \(CPU time", result.stderr)
    check(held, "the summary does not say how many thread samples the profile holds: %r" % result.stderr)
    collapsed = sum(count for _, count in parse_collapsed(base + ".txt"))
    with open(base + ".svg") as f:
        svg = f.read()
    title = re.search(r"<text id=\"title\"[^>]*>([^<]*)</text>", svg).group(1)
    root = re.search(r"<title>all&#10;(\d+) samples, 100%</title>", svg)
    print("summary: %s; collapsed: %d; flame graph title: %s; root: %s" %
          (held.group(0), collapsed, title, root.group(1) if root else None))
    check(int(held.group(1)) == collapsed, "the summary says %s thread samples, the collapsed stacks hold %d" %
          (held.group(1), collapsed))
    check(root and int(root.group(1)) == collapsed, "the flame graph's root counts %s" % (root and root.group(1)))
    check("; %d thread samples (CPU time)" % collapsed in title, "the flame graph's title does not say it: %r" % title)


def test_no_python(pysample, python, tmp):
    out = os.path.join(tmp, "x.svg")
    for args in (["record", "-o", out, "--", "sleep", "1"], ["record", "--subprocesses", "-o", out, "--", "sleep", "1"],
                 ["top", "--", "sleep", "1"]):
        result = subprocess.run([pysample] + args, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        print("$ pysample %s -> exit %d\n%s" % (" ".join(args), result.returncode, result.stderr))
        check(result.returncode == EXIT_NOT_PYTHON, "%s: exit %d, expected %d (no Python ever ran)" %
              (" ".join(args), result.returncode, EXIT_NOT_PYTHON))
        check(re.search(r"without ever running Python|no Python process ran", result.stderr),
              "%s: the message does not say that no Python ran" % " ".join(args))
    # A Python command that ends at once races pysample's attach: it ends, or is profiled; never a zombie.
    command, _ = interpreter_command(python, "exit_code.py")
    codes = {}
    for _ in range(15):
        result = subprocess.run([pysample, "record", "-q", "-o", out, "--"] + command + ["0", "0"], capture_output=True,
                                text=True, timeout=60)
        codes[result.returncode] = codes.get(result.returncode, 0) + 1
        check(result.returncode in (0, EXIT_NOT_PYTHON) and "zombie" not in result.stderr,
              "a command that ended at once: exit %d, %r" % (result.returncode, result.stderr))
    print("exit codes of 15 launches of a command that ends at once: %r" % codes)


# Run by the target's own interpreter: cProfile's file and pysample's, loaded with its pstats, and
# merged as two of cProfile's are.
COMPARE_PSTATS = """
import json, pstats, sys
ours, theirs = pstats.Stats(sys.argv[1]), pstats.Stats(sys.argv[2])
merged = pstats.Stats(sys.argv[1])
merged.add(sys.argv[2])
def keys(stats):
    return [[str(f), l, str(n)] for (f, l, n) in stats.stats]
calls = [list(map(str, key)) for key, value in ours.stats.items() if value[0] or value[1]]
sys.stdout.write(json.dumps({"ours": keys(ours), "theirs": keys(theirs), "counted": calls,
                             "merged_calls": merged.total_calls, "their_calls": theirs.total_calls}))
"""


def test_pstats_keys(pysample, python, tmp):
    root = python.split("::", 1)[0] if "::" in python else ""
    inner_dir = "/tmp/pysample-pstats-%d" % os.getpid()
    os.makedirs(root + inner_dir, exist_ok=True)
    ours, theirs = inner_dir + "/ours.pstats", inner_dir + "/theirs.pstats"
    try:
        with Workload(python, "pstats_names.py", 30) as workload:
            result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "2", "--rate", "500",
                                             "-o", root + ours])
            path = workload.path
        check(result.returncode == 0, "record failed with %d" % result.returncode)
        command, _ = interpreter_command(python, "pstats_names.py")
        subprocess.run(command[:-1] + ["-m", "cProfile", "-o", theirs, command[-1], "0.5"], check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
        compared = subprocess.run(command[:-1] + ["-c", COMPARE_PSTATS, ours, theirs], capture_output=True,
                                  text=True, timeout=120)
        check(compared.returncode == 0, "the target's pstats could not load or merge the files: %s" % compared.stderr)
        found = json.loads(compared.stdout)
    finally:
        shutil.rmtree(root + inner_dir, ignore_errors=True)
    mine = sorted(tuple(key) for key in found["ours"] if key[0] == path)
    cprofile = sorted(tuple(key) for key in found["theirs"] if key[0] == path)
    print("pysample's keys for the workload: %r\ncProfile's: %r" % (mine, cprofile))
    wanted = {"run", "inner", "outer", "main", "<module>"}
    check(wanted <= {key[2] for key in mine}, "pysample's keys lack some of %r: %r" % (sorted(wanted), mine))
    check(set(mine) <= set(cprofile), "keys cProfile does not have: %r" % sorted(set(mine) - set(cprofile)))
    check(not found["counted"], "call counts in a sampled profile: %r" % found["counted"][:3])
    check(found["merged_calls"] == found["their_calls"], "merging added calls: %d, cProfile alone %d" %
          (found["merged_calls"], found["their_calls"]))
    print("every pysample key is one cProfile uses; merged, the calls are cProfile's alone")


def fde_starts(library):
    """Start addresses of the functions the library's .eh_frame describes (readelf)."""
    out = subprocess.run(["readelf", "--debug-dump=frames", library], capture_output=True, text=True,
                         timeout=120).stdout
    return {int(start, 16) for start in re.findall(r"FDE cie=\w+ pc=([0-9a-f]+)\.\.", out)}


def test_numpy_native(pysample, _python, tmp):
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import numpy.core._multiarray_umath as m; print(m.__file__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise Skip("no numpy for %s (Debian's python3-numpy)" % python)
    library = probe.stdout.strip()
    if not shutil.which("readelf"):
        raise Skip("no readelf to read the unwind tables with")
    name = os.path.basename(library)
    out = os.path.join(tmp, "profile.txt")
    with Workload(python, "numpy_sort.py") as workload:
        result = run_pysample(pysample, ["record", "--native", "--pid", str(workload.pid), "-d", "2", "-o", out])
    check(result.returncode == 0, "record --native failed with %d" % result.returncode)
    stacks = parse_collapsed(out)
    leaves = {}
    for frames, count in stacks:
        function, location, _ = frames[-1]
        if (location or "").startswith(name) or (function or "").startswith(name):
            leaves[function] = leaves.get(function, 0) + count
    print("innermost frames in %s: %r" % (name, leaves))
    check(leaves, "no sample inside %s" % name)
    check(not any(f == "[unknown]" for f in leaves), "frames left unnamed: %r" % leaves)
    starts = fde_starts(library)
    named = [f for f in leaves if f.startswith(name + "+0x")]
    check(named, "no frame named %s+0xSTART" % name)
    for function in named:
        check(int(function[len(name) + 3:], 16) in starts, "%s is not where a function of the unwind tables starts" %
              function)
    sorting = sum(count for function, count in leaves.items() if function in named)
    check(len(named) <= 12, "%d distinct frames for %d samples in the sort: one per address, not per function" %
          (len(named), sorting))


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    sys.exit(run_e2e.main(TESTS))
