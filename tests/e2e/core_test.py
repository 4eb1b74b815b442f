#!/usr/bin/env python3
"""`pysample dump --core`: core files read as the live process was.

  gcore    a workload's threads, dumped live (`dump --pid --json`), then through gdb's gcore, raw and
           gzip-compressed: the same threads, names, GIL holder and call chains
  kernel   the same with the core the kernel writes when the workload is killed by SIGABRT
  crash    a program crashing in C (ctypes.string_at(0)): its kernel core with --native shows the
           Python chain that led to the crash, C frames on top, and the signal; --locals its variables
  namespace  a gcore, taken from the host, of a process in its own PID namespace: host and namespace
           thread ids both shown, native frames merged, as dump --pid shows them
  errors   bad input: not a core, a missing file, a core of a program that is not Python, files
           missing (--root), another executable than the one the core names (build ids differ)

Interpreters in a chroot (ROOT::PATH) are read with --root ROOT. Exits 77 (skipped) where the tool
a test needs is missing: gdb, or a kernel.core_pattern that writes cores into the process's directory.

Usage: core_test.py --pysample BIN --python INTERPRETER TEST
"""
import argparse
import gzip
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_e2e import Failure, Workload, check, markers, run_pysample  # noqa: E402

SKIP = 77
WORKER_NAMES = ["sleeper-one", "waiter-two", "spinner-three"]
# Where each thread of core_threads.py is: its own functions, innermost last.
EXPECTED_CHAINS = {
    "sleeper-one": ["nap"],
    "waiter-two": ["wait_for"],
    "spinner-three": ["spin"],
    "MainThread": ["<module>", "main_wait"],
}


class Skip(Exception):
    pass


def allow_core():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def split_python(python):
    """(root or None, the directory a workload may write in: path outside, path it sees)."""
    if "::" not in python:
        return None
    return python.split("::", 1)[0]


def work_dir(python, tmp, name):
    root = split_python(python)
    if root is None:
        path = os.path.join(tmp, name)
        os.makedirs(path)
        return path, path
    inner = "/tmp/pysample-workloads/%s-%d" % (name, os.getpid())
    outer = root + inner
    shutil.rmtree(outer, ignore_errors=True)
    os.makedirs(outer)
    return outer, inner


def root_args(python):
    root = split_python(python)
    return ["--root", root] if root else []


def require_kernel_cores():
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern:
        raise Skip("kernel.core_pattern is %r: cores do not go to the process's directory" % pattern)


def kernel_core(directory, proc):
    """The core the kernel wrote into `directory` for `proc`, once it has died of a signal."""
    proc.wait(timeout=60)
    check(proc.returncode < 0, "the workload exited with %d instead of dying of a signal" % proc.returncode)
    for _ in range(100):
        cores = [name for name in os.listdir(directory) if name.startswith("core")]
        if cores:
            path = os.path.join(directory, cores[0])
            size = os.path.getsize(path)
            time.sleep(0.1)
            if os.path.getsize(path) == size:
                return path
        time.sleep(0.1)
    raise Failure("no core in %s after the workload died of signal %d (ulimit -c, kernel.core_pattern?)"
                  % (directory, -proc.returncode))


def dump_json(pysample, args, codes=(0,)):
    result = run_pysample(pysample, ["dump", "--json"] + args)
    check(result.returncode in codes, "dump %s failed with %d: %s" % (" ".join(args), result.returncode, result.stderr))
    document = json.loads(result.stdout)
    for thread in document["threads"]:
        print("  thread %s %r %s: %s" % (thread["id"], thread["name"], thread.get("error") or "",
                                        " > ".join(f.get("function", "?") for f in thread["frames"])))
    if result.stderr:
        print(result.stderr)
    return document, result.stderr


def threads_of(document):
    """tid -> (name, holds_gil, [function, ...] outermost first, error)."""
    out = {}
    for thread in document["threads"]:
        functions = [frame["function"] for frame in thread["frames"] if "function" in frame and not frame.get("native")]
        out[thread["id"]] = (thread["name"], thread["holds_gil"], functions, thread.get("error"))
    return out


def check_workload_threads(threads, pid, what):
    names = sorted(name for name, _, _, _ in threads.values())
    check(names == sorted(WORKER_NAMES + ["MainThread"]), "%s: threads %r" % (what, names))
    check(threads[pid][0] == "MainThread", "%s: the main thread is %r" % (what, threads[pid]))
    for name, _, functions, error in threads.values():
        check(error is None, "%s: thread %s unreadable: %s" % (what, name, error))
        own = [f for f in functions if f in {"<module>", "main_wait", "nap", "wait_for", "spin"}]
        check(own == EXPECTED_CHAINS[name], "%s: thread %s runs %r, expected %r" % (what, name, functions,
                                                                                    EXPECTED_CHAINS[name]))


def same_as_live(live, core, what):
    """The core shows the threads the live dump showed: ids, names and call chains."""
    check(sorted(live) == sorted(core), "%s: thread ids %r, live %r" % (what, sorted(core), sorted(live)))
    for tid, (name, _, functions, _) in live.items():
        core_name, _, core_functions, error = core[tid]
        check(core_name == name, "%s: thread %d is %r, live %r" % (what, tid, core_name, name))
        check(error is None, "%s: thread %d unreadable: %s" % (what, tid, error))
        check(core_functions == functions, "%s: thread %s runs %r, live %r" % (what, name, core_functions,
                                                                               functions))


def check_core_header(document, pid, signal_name, what):
    core = document["core"]
    check(document["process"]["pid"] == pid, "%s: pid %r, expected %d" % (what, document["process"]["pid"], pid))
    check(core["signal"] == signal_name, "%s: signal %r, expected %r" % (what, core["signal"], signal_name))
    check(core["file_warnings"] == [], "%s: warnings %r" % (what, core["file_warnings"]))


def test_gcore(pysample, python, tmp):
    if shutil.which("gcore") is None:
        raise Skip("gcore (Debian's gdb) is not installed")
    outer, inner = work_dir(python, tmp, "gcore")
    with Workload(python, "core_threads.py", inner) as workload:
        live, _ = dump_json(pysample, ["--pid", str(workload.pid)])
        live_threads = threads_of(live)
        check_workload_threads(live_threads, workload.pid, "live")
        prefix = os.path.join(tmp, "gcore")
        made = subprocess.run(["gcore", "-o", prefix, str(workload.pid)], capture_output=True, text=True, timeout=120)
        path = "%s.%d" % (prefix, workload.pid)
        check(made.returncode == 0 and os.path.exists(path), "gcore failed: %s" % made.stderr[-2000:])
    # Exit status 1 where a thread's stack is missing from the core (see below).
    document, _ = dump_json(pysample, ["--core", path] + root_args(python), codes=(0, 1))
    check_core_header(document, workload.pid, None, "gcore")
    check(document["process"]["command_line"] == live["process"]["command_line"],
          "gcore: command line %r, live %r" % (document["process"]["command_line"], live["process"]["command_line"]))
    core_threads = threads_of(document)
    # gdb 13 writes zeros for thread stacks with guard pages (glibc 2.41+, the sid chroot): pysample says so.
    zeroed = [tid for tid, entry in core_threads.items() if entry[3] and "only zeros" in entry[3]]
    if zeroed:
        check(split_python(python) is not None, "stacks left out of a gcore of a host interpreter: %r" % zeroed)
        print("gcore left out the stacks of threads %r (guard pages); comparing the others" % zeroed)
        for tid in zeroed:
            live_threads.pop(tid)
            core_threads.pop(tid)
    same_as_live(live_threads, core_threads, "gcore")
    packed = path + ".gz"
    with open(path, "rb") as raw, gzip.open(packed, "wb", compresslevel=1) as out:
        shutil.copyfileobj(raw, out)
    compressed, _ = dump_json(pysample, ["--core", packed] + root_args(python), codes=(0, 1))
    check(compressed["core"]["compressed"], "the gzip core is not said to be compressed")
    check(compressed["threads"] == document["threads"], "the gzip core reads differently from the raw one")
    text = run_pysample(pysample, ["dump", "--core", path] + root_args(python))
    print(text.stdout)
    check(text.returncode == (1 if zeroed else 0), "dump --core exited with %d" % text.returncode)
    check(text.stdout.startswith("Core file %s of process %d" % (path, workload.pid)), "no core header")


def test_kernel(pysample, python, tmp):
    require_kernel_cores()
    outer, inner = work_dir(python, tmp, "kernel")
    workload = Workload(python, "core_threads.py", inner, preexec_fn=allow_core)
    with workload:
        live, _ = dump_json(pysample, ["--pid", str(workload.pid)])
        live_threads = threads_of(live)
        check_workload_threads(live_threads, workload.pid, "live")
        workload.proc.send_signal(signal.SIGABRT)
        path = kernel_core(outer, workload.proc)
    document, _ = dump_json(pysample, ["--core", path, "--native"] + root_args(python))
    check_core_header(document, workload.pid, "SIGABRT", "kernel core")
    check(document["process"]["command_line"] == live["process"]["command_line"],
          "kernel core: command line %r, live %r" % (document["process"]["command_line"],
                                                     live["process"]["command_line"]))
    same_as_live(live_threads, threads_of(document), "kernel core")
    # Threads waiting in a system call stand still where the live dump saw them: their C stacks merge.
    for thread in document["threads"]:
        if thread["name"] == "spinner-three":
            continue
        check(any(frame.get("native") for frame in thread["frames"]) and "native_error" not in thread,
              "thread %s: no native frames merged (%s)" % (thread["name"], thread.get("native_error")))


def test_crash(pysample, python, tmp):
    require_kernel_cores()
    outer, inner = work_dir(python, tmp, "crash")
    m = markers("crash.py")
    with Workload(python, "crash.py", inner, preexec_fn=allow_core) as workload:
        path = kernel_core(outer, workload.proc)
    check(workload.proc.returncode == -signal.SIGSEGV, "the crash ended with %d" % workload.proc.returncode)
    result = run_pysample(pysample, ["dump", "--core", path, "--native"] + root_args(python))
    print(result.stdout)
    print(result.stderr)
    check(result.returncode == 0, "dump --core --native failed with %d" % result.returncode)
    lines = result.stdout.splitlines()
    check(lines[1] == "Ended by SIGSEGV in thread %d at address 0x0" % workload.pid, "signal line %r" % lines[1])
    start = lines.index(next(line for line in lines if line.startswith("Thread %d " % workload.pid)))
    check(lines[start].endswith("(received SIGSEGV):"), "the crashed thread is not marked: %r" % lines[start])
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("  "):
            break
        body.append(line.strip())
    python_lines = [line for line in body if line.startswith("File ")]
    expected = ['in <module>'] + ['line %d, in crash_here' % m["recurse"]] * 3 + ['line %d, in crash_here' % m["crash"]]
    check(len(python_lines) >= 6 and all(e in line for e, line in zip(expected, python_lines)),
          "crash chain %r, expected %r then string_at" % (python_lines, expected))
    check(python_lines[-1].endswith("in string_at"), "innermost Python frame %r" % python_lines[-1])
    after = body[body.index(python_lines[-1]) + 1:]
    check(after and all(line.startswith("[native]") for line in after),
          "no C frames above the Python ones: %r" % after)
    check(any(line.startswith("Thread ") and '"bystander"' in line for line in lines), "the other thread is missing")
    # The variables of the frames that crashed, as the interpreter held them.
    document, _ = dump_json(pysample, ["--core", path, "--locals"] + root_args(python))
    main = next(t for t in document["threads"] if t["id"] == workload.pid)
    depths = [frame["locals"][0]["repr"] for frame in main["frames"]
              if frame.get("function") == "crash_here" and frame.get("locals")]
    check(depths == ["3", "2", "1", "0"], "crash_here's depth in the core: %r" % depths)


def test_namespace(pysample, python, tmp):
    """A gcore taken from the host of a process in its own PID namespace: gdb numbers the threads as
    the host does, the interpreter as the namespace does; the core must show both, as `dump --pid`."""
    if shutil.which("gcore") is None or shutil.which("unshare") is None:
        raise Skip("gcore (gdb) or unshare (util-linux) is not installed")
    if split_python(python) is not None:
        raise Skip("run with an interpreter outside the chroot")
    outer, inner = work_dir(python, tmp, "namespace")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads", "core_threads.py")
    # --kill-child: the workload is its namespace's init, which a signal to unshare would not reach.
    # No mount namespace: gdb would name the files of a process in another one by paths outside a
    # chroot the tests may run in.
    launcher = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", python, source, inner],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = None
    try:
        line = launcher.stdout.readline()
        check(line.strip() == "ready", "the workload did not start: %r %s" % (line, launcher.stderr.read()
                                                                               if launcher.poll() is not None else ""))
        with open("/proc/%d/task/%d/children" % (launcher.pid, launcher.pid)) as f:
            pid = int(f.read().split()[0])
        live, _ = dump_json(pysample, ["--pid", str(pid), "--native"])
        check(all(t["namespace_id"] for t in live["threads"]), "the live dump has no namespace ids")
        prefix = os.path.join(tmp, "ns")
        made = subprocess.run(["gcore", "-o", prefix, str(pid)], capture_output=True, text=True, timeout=120)
        check(made.returncode == 0, "gcore failed: %s" % made.stderr[-2000:])
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        launcher.kill()
        launcher.wait()
    document, _ = dump_json(pysample, ["--core", "%s.%d" % (prefix, pid), "--native"])
    live_ids = sorted((t["id"], t["namespace_id"]) for t in live["threads"])
    core_ids = sorted((t["id"], t["namespace_id"]) for t in document["threads"])
    check(core_ids == live_ids, "thread ids %r, live %r" % (core_ids, live_ids))
    same_as_live(threads_of(live), threads_of(document), "namespaced gcore")
    for thread in document["threads"]:
        if thread["name"] != "spinner-three":
            check("native_error" not in thread, "thread %s: %s" % (thread["name"], thread.get("native_error")))


def run_expecting(pysample, args, code, phrase):
    result = run_pysample(pysample, args)
    print(result.stderr)
    check(result.returncode == code, "%s exited with %d, expected %d" % (args, result.returncode, code))
    check(phrase in result.stderr, "%s: %r not in %r" % (args, phrase, result.stderr))
    return result


def test_errors(pysample, python, tmp):
    not_core = os.path.join(tmp, "not-a-core")
    with open(not_core, "w") as f:
        f.write("plain text\n")
    run_expecting(pysample, ["dump", "--core", not_core], 9, "is not a core file")
    run_expecting(pysample, ["dump", "--core", os.path.join(tmp, "missing")], 9, "cannot open core file")
    run_expecting(pysample, ["dump", "--core", sys.executable], 9, "is an ELF file but not a core file")
    run_expecting(pysample, ["dump", "--pid", "1", "--core", not_core], 2, "not both")
    run_expecting(pysample, ["dump", "--pid", "1", "--root", "/"], 2, "go with --core")
    if shutil.which("gcore") is None:
        raise Skip("gcore (Debian's gdb) is not installed")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        prefix = os.path.join(tmp, "sleep")
        subprocess.run(["gcore", "-o", prefix, str(sleeper.pid)], capture_output=True, timeout=120, check=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    run_expecting(pysample, ["dump", "--core", "%s.%d" % (prefix, sleeper.pid)], 5, "is not a Python process")
    outer, inner = work_dir(python, tmp, "errors")
    with Workload(python, "core_threads.py", inner) as workload:
        prefix = os.path.join(tmp, "py")
        subprocess.run(["gcore", "-o", prefix, str(workload.pid)], capture_output=True, timeout=120, check=True)
        path = "%s.%d" % (prefix, workload.pid)
    # Another file given as the executable: its build id is not the one the core recorded.
    other = shutil.which("true")
    result = run_pysample(pysample, ["dump", "--core", path, "--executable", other])
    print(result.stderr)
    check("is not the file the program mapped as" in result.stderr and "build id" in result.stderr,
          "no build-id warning for --executable %s: %r" % (other, result.stderr))
    cut = path + ".cut"
    with open(path, "rb") as whole, open(cut, "wb") as out:
        out.write(whole.read(os.path.getsize(path) // 2))
    run_expecting(pysample, ["dump", "--core", cut], 9, "truncated")
    # The interpreter's file missing, where the executable is the interpreter (a static build).
    if "libpython" not in subprocess.run(["ldd", python], capture_output=True, text=True).stdout:
        run_expecting(pysample, ["dump", "--core", path, "--executable", os.path.join(tmp, "gone", "python3")], 9,
                      "cannot be read here")


TESTS = {"gcore": test_gcore, "kernel": test_kernel, "crash": test_crash, "errors": test_errors,
         "namespace": test_namespace}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pysample", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("test", choices=sorted(TESTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pysample-core-") as tmp:
        try:
            TESTS[args.test](os.path.abspath(args.pysample), args.python, tmp)
        except Skip as skip:
            print("skipped core %s (%s): %s" % (args.test, args.python, skip))
            return SKIP
        except Failure as failure:
            print("FAILED core %s (%s): %s" % (args.test, args.python, failure))
            return 1
    print("passed core %s (%s)" % (args.test, args.python))
    return 0


if __name__ == "__main__":
    sys.exit(main())
