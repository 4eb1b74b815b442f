#!/usr/bin/env python3
"""End-to-end tests of what pysample does with input it cannot trust: bad option values and bad
targets (one clear line on stderr, a distinct exit code), output paths it cannot write (refused
before it attaches), stop signals while it writes (no half-written file, no temporary file left),
and hostile function and file names in the target (escaped, or replaced, in every format).

Usage: input_test.py --pysample BIN [--python INTERPRETER] TEST
"""
import io
import json
import os
import pstats
import re
import signal
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_e2e import (HERE, ROOT, SYSTEM_PYTHON, Failure, Workload, check, main, markers,  # noqa: E402
                     parse_collapsed, run_checker, run_pysample)

EXIT_USAGE, EXIT_NO_PROCESS, EXIT_PERMISSION, EXIT_NOT_PYTHON = 2, 3, 4, 5
EXIT_UNSUPPORTED, EXIT_EXITED, EXIT_OUTPUT = 6, 7, 8
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def one_line(result, what):
    lines = result.stderr.strip().splitlines()
    check(len(lines) == 1, "%s: expected one line on stderr, got %r" % (what, result.stderr))
    return lines[0]


def expect_error(pysample, args, code, words, what, prefix=(), cwd=None):
    """Runs pysample, expecting exit `code` and one stderr line that contains every one of `words`."""
    started = time.time()
    result = subprocess.run(list(prefix) + [pysample] + args, capture_output=True, text=True, timeout=30, cwd=cwd)
    print("$ %spysample %s  -> exit %d in %.1fs\n%s" % (" ".join(prefix) + " " if prefix else "", " ".join(args),
                                                         result.returncode, time.time() - started, result.stderr))
    check(result.returncode == code, "%s: exit %d, expected %d" % (what, result.returncode, code))
    line = one_line(result, what)
    for word in words:
        check(word in line, "%s: %r does not say %r" % (what, line, word))
    return line


def can_drop_privileges():
    return os.geteuid() == 0 and os.path.exists("/usr/bin/setpriv")


def sleeper():
    process = subprocess.Popen(["sleep", "100"])
    time.sleep(0.1)
    return process


def missing_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


# ---- Bad option values ----

RECORD_VALUES = [
    (["--rate", "0"], "--rate"), (["--rate", "-5"], "--rate"), (["-r", "-5"], "--rate"), (["--rate", "abc"], "--rate"),
    (["--rate", "inf"], "--rate"), (["--rate", "2000000"], "--rate"),
    (["--duration", "abc"], "--duration"), (["--duration", "-1"], "--duration"), (["-d", "-1"], "--duration"),
    (["--duration", "0"], "--duration"), (["--duration", "nan"], "--duration"),
    # Only plain decimal numbers: not hexadecimal, which strtod would read as 16.
    (["--rate", "0x10"], "--rate"), (["--duration", "0x2"], "--duration"), (["--rate", "1e2x"], "--rate"),
]


def test_bad_options(pysample, _python, tmp):
    """Each bad value: exit 2 and one line naming the option, the value and what it takes."""
    for sub in ("record", "top"):
        for values, option in RECORD_VALUES:
            expect_error(pysample, [sub, "--pid", "1"] + values, EXIT_USAGE, [option, "'%s'" % values[1], "takes"],
                         "%s %s" % (sub, " ".join(values)))
    expect_error(pysample, ["top", "--pid", "1", "--interval", "abc"], EXIT_USAGE, ["--interval", "takes"],
                 "top --interval abc")
    expect_error(pysample, ["top", "--pid", "1", "--interval", "0"], EXIT_USAGE, ["--interval", "0.05"],
                 "top --interval 0")
    for sub in ("record", "dump", "top"):
        for pid in ("abc", "-3", "0", "1.5", "99999999999"):
            expect_error(pysample, [sub, "--pid", pid], EXIT_USAGE, ["--pid", "'%s'" % pid, "takes"],
                         "%s --pid %s" % (sub, pid))
        expect_error(pysample, [sub, "--pid", "1", "--python-version", "three"], EXIT_USAGE,
                     ["--python-version", "X.Y"], "%s --python-version three" % sub)
        expect_error(pysample, [sub, "--pid", "1", "--no-such-option"], EXIT_USAGE, ["no-such-option", "--help"],
                     "%s --no-such-option" % sub)
    expect_error(pysample, ["dump", "--pid", "1", "--rate", "10"], EXIT_USAGE, ["rate"], "dump --rate")
    # Counts: a negative one would wrap around to 2^64-1.
    for args, option in ((["record", "--top", "-1"], "--top"), (["record", "--top", "2.5"], "--top"),
                         (["record", "--top", "0x10"], "--top"), (["top", "--rows", "-1"], "--rows"),
                         (["top", "--rows", "0"], "--rows"), (["top", "--rows", "99999999999999999999999"], "--rows")):
        expect_error(pysample, args[:1] + ["--pid", "1"] + args[1:], EXIT_USAGE, [option, "'%s'" % args[-1], "takes"],
                     " ".join(args))
    # A value from the command line with control characters is escaped in the message: one line.
    expect_error(pysample, ["record", "--pid", "1", "--rate", "1\n\x1b[31m"], EXIT_USAGE,
                 ["--rate", "\\x0a\\x1b[31m"], "record --rate with a newline and an escape sequence")


# ---- Bad targets ----

def zombie():
    """A child that has exited and is not reaped yet."""
    child = subprocess.Popen(["true"])
    for _ in range(200):
        with open("/proc/%d/stat" % child.pid) as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return child
        time.sleep(0.01)
    raise Failure("child %d did not become a zombie" % child.pid)


def test_bad_targets(pysample, python, tmp):
    """No such process (3), not Python (5), a zombie (7), an unsupported version (6) and, as an
    unprivileged user, a root process (4): each for record, dump and top."""
    subcommands = (["record", "-o", os.path.join(tmp, "x.svg")], ["dump"], ["top", "-d", "1"])
    missing = missing_pid()
    for sub in subcommands:
        expect_error(pysample, sub + ["--pid", str(missing)], EXIT_NO_PROCESS, ["no process", str(missing)],
                     "%s of a missing pid" % sub[0])
    target = sleeper()
    try:
        for sub in subcommands:
            expect_error(pysample, sub + ["--pid", str(target.pid)], EXIT_NOT_PYTHON,
                         ["not a Python process", str(target.pid)], "%s of sleep" % sub[0])
    finally:
        target.kill()
        target.wait()
    child = zombie()
    try:
        for sub in subcommands:
            expect_error(pysample, sub + ["--pid", str(child.pid)], EXIT_EXITED,
                         ["process %d is a zombie" % child.pid, "has not reaped it"], "%s of a zombie" % sub[0])
    finally:
        child.wait()
    with Workload(python, "sleeper.py", 30) as workload:
        for version in ("3.5", "2.6", "3.99"):
            for sub in subcommands:
                expect_error(pysample, sub + ["--pid", str(workload.pid), "--python-version", version],
                             EXIT_UNSUPPORTED, ["--python-version " + version, "2.7 and 3.6 to 3.15"],
                             "%s --python-version %s" % (sub[0], version))
    if not can_drop_privileges():
        print("skipped the permission checks: needs root and setpriv")
        return
    target = sleeper()
    try:
        for sub in subcommands:
            if sub[0] == "record":
                sub = ["record", "-o", "/tmp/pysample-never-written.svg"]
            expect_error(pysample, sub + ["--pid", str(target.pid)], EXIT_PERMISSION,
                         ["root", "CAP_SYS_PTRACE", "kernel.yama.ptrace_scope", str(target.pid)],
                         "%s of a root process as nobody" % sub[0], prefix=NOBODY)
    finally:
        target.kill()
        target.wait()
    check(not os.path.exists("/tmp/pysample-never-written.svg"), "a refused record left its output behind")


# ---- Output paths checked before sampling ----

def test_output_paths(pysample, _python, tmp):
    """An output that cannot be written is refused with exit 8 before pysample attaches (a process
    that is not Python, which would give 5, and a root process as nobody, which would give 4) or
    launches its command, and no file is created."""
    os.chmod(tmp, 0o755)
    a_file = os.path.join(tmp, "file.txt")
    with open(a_file, "w") as f:
        f.write("x\n")
    a_directory = os.path.join(tmp, "profile.svg")
    os.mkdir(a_directory)
    cases = [
        (os.path.join(tmp, "missing", "a.svg"), ["does not exist", "missing"]),
        (a_directory, ["is a directory"]),
        (tmp, ["is a directory"]),
        (tmp + "/", ["is a directory"]),
        (os.path.join(a_file, "a.svg"), ["is not a directory", "file.txt"]),
        # Too long for the file system: found now, not once the run is over.
        (os.path.join(tmp, "n" * 300 + ".svg"), ["the file name is 304 bytes long", "255 at most"]),
    ]
    target = sleeper()
    try:
        for path, words in cases:
            expect_error(pysample, ["record", "--pid", str(target.pid), "-f", "flamegraph", "-o", path], EXIT_OUTPUT,
                         ["'%s'" % path] + words, "record -o %s" % path)
        # The second of several outputs is bad: nothing is written, not even the first.
        good = os.path.join(tmp, "good.svg")
        expect_error(pysample, ["record", "--pid", str(target.pid), "-o", good, "-o", cases[0][0]], EXIT_OUTPUT,
                     ["does not exist"], "record with one bad output of two")
        check(not os.path.exists(good), "the good output was written although the run was refused")
    finally:
        target.kill()
        target.wait()

    marker = os.path.join(tmp, "launched")
    expect_error(pysample, ["record", "-o", cases[0][0], "--", "sh", "-c", "touch " + marker], EXIT_OUTPUT,
                 ["does not exist"], "launch mode with a bad output")
    check(not os.path.exists(marker), "the command was launched although its profile could not be written")

    if not can_drop_privileges():
        print("skipped the unprivileged output checks: needs root and setpriv")
        return
    root_dir = os.path.join(tmp, "root-only")
    os.mkdir(root_dir, 0o755)
    read_only = os.path.join(tmp, "read-only")
    os.mkdir(read_only)
    os.chown(read_only, 65534, 65534)
    os.chmod(read_only, 0o555)
    shared = os.path.join(tmp, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    not_writable = os.path.join(shared, "root.svg")
    with open(not_writable, "w") as f:
        f.write("<svg/>\n")
    os.chmod(not_writable, 0o644)
    target = sleeper()
    try:
        for path, words in ((os.path.join(root_dir, "a.svg"), ["cannot create files", "Permission denied"]),
                            (os.path.join(read_only, "a.svg"), ["cannot create files", "Permission denied"]),
                            (not_writable, ["not writable", "Permission denied"])):
            expect_error(pysample, ["record", "--pid", str(target.pid), "-o", path], EXIT_OUTPUT,
                         ["'%s'" % path] + words, "record -o %s as nobody" % path, prefix=NOBODY)
        expect_error(pysample, ["record", "--pid", str(target.pid)], EXIT_OUTPUT,
                     ["current directory", "Permission denied"], "record to the default name in a root directory",
                     prefix=NOBODY, cwd=root_dir)
    finally:
        target.kill()
        target.wait()
    with open(not_writable) as f:
        check(f.read() == "<svg/>\n", "the file nobody may write was changed")
    check(os.listdir(root_dir) == [] and os.listdir(read_only) == [], "files were left in the refused directories")
    check_planted_files(pysample, tmp, root_dir)


def check_planted_files(pysample, tmp, root_dir):
    """Root writing into a directory where anyone may create files (sticky, like /tmp): a link
    that another user planted at the output's name, to a root-only file or to a name in a root-only
    directory, and another user's file there, are refused (exit 8), and nothing is written through."""
    public = os.path.join(tmp, "pub")
    os.mkdir(public)
    os.chmod(public, 0o1777)
    secret = os.path.join(root_dir, "secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    planted = {"flame.svg": secret, "dangling.svg": os.path.join(root_dir, "created.svg")}
    for name, pointing_at in planted.items():
        subprocess.run(NOBODY + ["ln", "-s", pointing_at, os.path.join(public, name)], check=True)
    theirs = os.path.join(public, "theirs.svg")
    subprocess.run(NOBODY + ["sh", "-c", "echo theirs > " + theirs], check=True)
    target = sleeper()
    try:
        for name in planted:
            path = os.path.join(public, name)
            expect_error(pysample, ["record", "--pid", str(target.pid), "-o", path], EXIT_OUTPUT,
                         ["'%s'" % path, "symbolic link"], "record -o a link planted by another user")
        expect_error(pysample, ["record", "--pid", str(target.pid), "-o", theirs], EXIT_OUTPUT,
                     ["'%s'" % theirs, "belongs to another user", "sticky"], "record -o another user's file in /tmp")
    finally:
        target.kill()
        target.wait()
    with open(secret) as f:
        check(f.read() == "root only\n", "the root-only file behind the link was changed")
    check(not os.path.exists(planted["dangling.svg"]), "a file was created through a dangling link")
    with open(theirs) as f:
        check(f.read() == "theirs\n", "another user's file was replaced")
    print("links and another user's file in a sticky directory refused; nothing written through them")


# ---- Atomic outputs ----

OUTPUTS = ["a.svg", "b.speedscope.json", "c.json", "d.txt", "e.prof.txt", "f.pstats"]


def check_complete(directory, names, what):
    """Each named file is whole: the SVG parses as XML, the JSON loads, pstats loads the stats,
    the collapsed stacks and the text table end where they should."""
    for name in names:
        path = os.path.join(directory, name)
        check(os.path.exists(path), "%s: %s missing" % (what, name))
        if name.endswith(".svg"):
            root = ElementTree.parse(path).getroot()
            check(root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}g")) > 2,
                  "%s: %s has no frames" % (what, name))
        elif name.endswith(".json"):
            with open(path) as f:
                check(json.load(f), "%s: %s is empty" % (what, name))
        elif name.endswith(".pstats"):
            check(pstats.Stats(path).total_tt > 0, "%s: %s has no time" % (what, name))
        elif name.endswith(".prof.txt"):
            with open(path) as f:
                text = f.read()
            check("samples  tottime" in text and text.endswith("\n\n\n"), "%s: %s is cut short" % (what, name))
        else:
            stacks = parse_collapsed(path)
            check(stacks, "%s: %s has no stacks" % (what, name))
    leftovers = [n for n in os.listdir(directory) if n not in names]
    check(not leftovers, "%s: files left in the output directory: %r" % (what, leftovers))


def start_recording(pysample, pid, directory, *extra):
    os.makedirs(directory)
    args = [pysample, "record", "--pid", str(pid), "-q"] + list(extra)
    for name in OUTPUTS:
        args += ["-o", os.path.join(directory, name)]
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True, umask=0o027)


def wait_for_temporary_file(directory, proc, output, timeout=20):
    """Polls until pysample writes `output` under its temporary name; False if it did not in time."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(name.startswith("." + output + ".") for name in os.listdir(directory)):
            return True
        time.sleep(0.0002)
    return False


def test_atomic_outputs(pysample, python, tmp):
    """SIGINT and SIGTERM while recording, a second SIGINT while writing, and SIGKILL while
    writing: the outputs are whole or absent, never cut short, and no temporary file is left
    except after SIGKILL; new files get 0666 less the umask, replaced ones keep their mode."""
    with Workload(python, "split.py", 60) as workload:
        for sig in (signal.SIGINT, signal.SIGTERM):
            directory = os.path.join(tmp, "signal-%d" % sig)
            proc = start_recording(pysample, workload.pid, directory)
            time.sleep(1)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            check(proc.returncode == 0, "exit %d after signal %d: %s" % (proc.returncode, sig, err))
            check_complete(directory, OUTPUTS, "after signal %d" % sig)
            for name in OUTPUTS:
                mode = stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode)
                check(mode == 0o640, "%s has mode %o, expected 640 (0666 less the umask 027)" % (name, mode))
            print("signal %d: every output whole, mode 640, no temporary file" % sig)

        # At the maximum rate the time-ordered outputs are large enough to take a while to write.
        caught = 0
        for attempt, output in enumerate(OUTPUTS[:3]):
            directory = os.path.join(tmp, "second-sigint-%d" % attempt)
            proc = start_recording(pysample, workload.pid, directory, "--rate", "max")
            time.sleep(1)
            proc.send_signal(signal.SIGINT)
            if wait_for_temporary_file(directory, proc, output):
                proc.send_signal(signal.SIGINT)
                caught += 1
            _, err = proc.communicate(timeout=60)
            check(proc.returncode == 0, "exit %d after a second SIGINT: %s" % (proc.returncode, err))
            check_complete(directory, OUTPUTS, "after a second SIGINT")
        print("a second SIGINT landed while writing in %d of 3 runs; every output whole" % caught)
        check(caught > 0, "the second SIGINT never arrived while the outputs were being written")

        # Killed while writing the Nth output: the ones before it are whole, the rest absent.
        killed = 0
        for attempt, output in enumerate(OUTPUTS[:3]):
            directory = os.path.join(tmp, "sigkill-%d" % attempt)
            proc = start_recording(pysample, workload.pid, directory, "--rate", "max")
            time.sleep(1)
            proc.send_signal(signal.SIGINT)
            if wait_for_temporary_file(directory, proc, output):
                proc.kill()
                killed += 1
            proc.communicate(timeout=60)
            present = [name for name in OUTPUTS if os.path.exists(os.path.join(directory, name))]
            temporary = [name for name in os.listdir(directory) if name not in OUTPUTS]
            check(present == OUTPUTS[:len(present)], "outputs present after SIGKILL: %r" % present)
            check(all(re.match(r"^\.(%s)\.\w{6}$" % "|".join(map(re.escape, OUTPUTS)), name) for name in temporary),
                  "unexpected files after SIGKILL: %r" % temporary)
            for name in temporary:
                os.unlink(os.path.join(directory, name))
            check_complete(directory, present, "after SIGKILL")
            print("SIGKILL while writing %s: %d outputs whole, %d absent, temporary files %r" %
                  (output, len(present), len(OUTPUTS) - len(present), temporary))
        check(killed > 0, "SIGKILL never arrived while the outputs were being written")

        # A directory that disappears while recording: that output fails (exit 8), the others are written.
        directory = os.path.join(tmp, "vanishing")
        os.makedirs(directory)
        kept = os.path.join(tmp, "kept.txt")
        # --idle: the kept output has stacks even when a loaded machine gives the workload no CPU for a second.
        proc = subprocess.Popen([pysample, "record", "--pid", str(workload.pid), "-d", "1", "--idle", "-o",
                                 os.path.join(directory, "lost.svg"), "-o", kept], stderr=subprocess.PIPE, text=True)
        started = proc.stderr.readline()
        check("sampling pid" in started, "pysample did not start sampling: %r" % started)
        os.rmdir(directory)
        _, err = proc.communicate(timeout=60)
        print(started + err)
        check(proc.returncode == EXIT_OUTPUT, "exit %d when an output directory vanished" % proc.returncode)
        failures = [line for line in err.splitlines() if "cannot write" in line]
        check(len(failures) == 1 and "lost.svg" in failures[0] and "No such file or directory" in failures[0],
              "the failed output is not reported in one line: %r" % err)
        check("wrote " + kept in err, "the summary does not list the output that was written")
        check(parse_collapsed(kept), "the other output was not written")

        # An existing file keeps its mode; a device and standard output are written to, not
        # replaced; a symbolic link is refused, never written through.
        directory = os.path.join(tmp, "replace")
        os.makedirs(directory)
        existing = os.path.join(directory, "old.txt")
        with open(existing, "w") as f:
            f.write("old\n")
        os.chmod(existing, 0o600)
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "1", "-o", existing,
                                         "-o", "/dev/null", "-o", "/dev/stdout", "-o", "-", "-f", "collapsed"])
        check(result.returncode == 0, "record over existing files failed with %d" % result.returncode)
        stdout_lines = [line for line in result.stdout.splitlines() if re.match(r"^<module> .* \d+$", line)]
        check(stdout_lines and len(stdout_lines) % 2 == 0, "not written twice to standard output (a pipe): %r" %
              result.stdout[:300])
        check(stat.S_IMODE(os.stat(existing).st_mode) == 0o600, "the replaced file lost its mode 600")
        check(parse_collapsed(existing), "the replaced file has no stacks")
        check(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no longer a device")
        check(not os.path.exists(os.path.join(directory, "-")), "'-o -' wrote a file named '-'")
        link = os.path.join(directory, "link.svg")
        os.symlink("target.svg", link)
        result = run_pysample(pysample, ["record", "--pid", str(workload.pid), "-d", "1", "-o", link])
        check(result.returncode == EXIT_OUTPUT and "symbolic link" in result.stderr,
              "record -o LINK: exit %d, %r" % (result.returncode, result.stderr))
        check(os.path.islink(link) and not os.path.exists(os.path.join(directory, "target.svg")),
              "a file was written through the symbolic link")


# ---- Hostile names ----

def decode_bytes(raw):
    """pysample's reading of a byte string: UTF-8, each byte outside a valid sequence U+FFFD."""
    out = []
    at = 0
    while at < len(raw):
        for length in (1, 2, 3, 4):
            try:
                out.append(raw[at:at + length].decode("utf-8"))
                at += length
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\ufffd")
            at += 1
    return "".join(out)


def expected_text(hex_prefix, length, python2):
    """A name as pysample reads it: valid UTF-8, cut at 4096 characters (bytes on Python 2) with a marker."""
    raw = bytes.fromhex(hex_prefix)
    if python2:
        text = decode_bytes(raw[:4096])
        unit = "bytes"
    else:
        text = re.sub("[\ud800-\udfff]", "\ufffd", raw.decode("utf-8", "surrogatepass")[:4096])
        unit = "characters"
    return text + ("\u2026[truncated, %d %s]" % (length, unit) if length > 4096 else "")


def escaped(text):
    """pysample's escaping for line-based text: control characters \\xNN, line separators \\uNNNN."""
    return re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]",
                  lambda m: ("\\x%02x" if ord(m.group()) < 0x100 else "\\u%04x") % ord(m.group()), text)


def svg_readable(text):
    """The flame graph's readable form: control characters \\xNN, non-characters U+FFFD."""
    text = re.sub("[\x00-\x1f\x7f-\x9f]", lambda m: "\\x%02x" % ord(m.group()), text)
    return re.sub("[\ufffe\uffff]", "\ufffd", text)


SVG = "{http://www.w3.org/2000/svg}"
SVG_ELEMENTS = {"svg", "title", "style", "rect", "g", "text", "script"}


def check_svg(path, names):
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    root = ElementTree.fromstring(raw)
    elements = list(root.iter())
    scripts = [e for e in elements if e.tag == SVG + "script"]
    check(len(scripts) == 1 and scripts[0] is list(root)[-1], "the SVG has %d script elements" % len(scripts))
    for element in elements:
        tag = element.tag.replace(SVG, "")
        check(tag in SVG_ELEMENTS, "unexpected element <%s> in the SVG" % tag)
        handlers = [name for name in element.attrib if name.lower().startswith("on")]
        check(not handlers, "event handler attributes %r on <%s>" % (handlers, tag))
    check("<script>alert" not in raw and "<g onload" not in raw, "markup from the target is in the SVG unescaped")
    titles = [e.text or "" for e in root.iter(SVG + "title")]
    for tag, name, filename in names:
        label = svg_readable(name) + " (" + svg_readable(filename) + ":"
        check(any(t.startswith(label) for t in titles), "no frame titled %r in the SVG" % label[:200])
    print("svg: one script, no handlers, %d hostile frames titled as expected" % len(names))


def check_json_names(path, names, frames):
    """The names as the JSON holds them (parsed back): exactly the names read, nothing escaped away."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    present = {(frame.get("name"), frame.get("file")) for frame in frames(data)}
    for tag, name, filename in names:
        check((name, filename) in present, "%s: no frame named %r in %r" % (path, name[:200], filename[:200]))
    print("%s: every hostile name and file exact" % os.path.basename(path))


def chrome_frames(data):
    return [{"name": e["name"], "file": e.get("args", {}).get("file")} for e in data["traceEvents"] if e["ph"] == "X"]


def check_lines(path, what):
    """One record per line, however a program splits lines (str.splitlines knows more line ends than
    '\\n'), and valid UTF-8 without control characters."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    check(text.splitlines() == text.split("\n")[:-1], "%s: a name splits a line" % what)
    check(not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), "%s: control characters in the text" % what)
    return text


def check_collapsed(path, names):
    text = check_lines(path, "collapsed")
    for line in text.splitlines():
        check(re.match(r"^.+ \d+$", line), "malformed collapsed line %r" % line[:200])
    for tag, name, filename in names:
        frame = escaped(name).replace(";", ":") + " (" + escaped(filename).replace(";", ":") + ":"
        check(any(part.startswith(frame) for line in text.splitlines() for part in line.split(";")),
              "collapsed: no frame %r" % frame[:200])
    print("collapsed: one stack per line, every hostile frame escaped in place")


def check_text(path, names, first_line):
    text = check_lines(path, "text")
    for tag, name, filename in names:
        row = "%s:%d(%s)" % (escaped(filename), first_line, escaped(name))
        check(any(line.endswith(" " + row) for line in text.splitlines()), "text: no row ending %r" % row[:200])
    print("text: one row per line, every hostile function listed")


def check_pstats_names(path, names, first_line):
    stats = pstats.Stats(path, stream=io.StringIO())
    keys = set(stats.stats)
    for tag, name, filename in names:
        check((filename, first_line, name) in keys, "pstats: no key for %s" % tag)
    stats.sort_stats("cumulative").print_stats()
    print("pstats: loads, prints, and keys every hostile function exactly")


def check_dump(pysample, pid, names):
    """dump's traceback lines stay one per frame; --json parses and names the frames exactly."""
    result = run_pysample(pysample, ["dump", "--pid", str(pid)])
    check(result.returncode == 0, "dump failed with %d" % result.returncode)
    text = result.stdout
    check(text.splitlines() == text.split("\n")[:-1], "dump: a name splits a line")
    check(not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), "dump: control characters in the output")
    frames = [line for line in text.splitlines() if line.startswith("  File ")]
    check(frames and all(re.match(r'^  File ".*", line \d+, in .+$', line) for line in frames),
          "dump: malformed frame lines %r" % frames)
    result = run_pysample(pysample, ["dump", "--json", "--pid", str(pid)])
    check(result.returncode == 0, "dump --json failed with %d" % result.returncode)
    known = {name for _, name, _ in names} | {"<module>", "main", "burn"}
    for thread in json.loads(result.stdout)["threads"]:
        for frame in thread["frames"]:
            check(frame["function"] in known, "dump --json: unexpected function %r" % frame["function"][:200])
    print("dump: %d frame lines, JSON names exact" % len(frames))


def record_hostile(pysample, python, tmp, extra=()):
    base = os.path.join(tmp, "hostile")
    files = {suffix: base + suffix for suffix in (".svg", ".txt", ".speedscope.json", ".pstats", ".prof.txt", ".json")}
    with Workload(python, "hostile_names.py", 30, preamble=1) as workload:
        description = json.loads(workload.preamble[0])
        python2 = description["python"][0] == 2
        names = [(tag, expected_text(name, name_length, python2), expected_text(path, path_length, python2))
                 for tag, name, name_length, path, path_length in description["names"]]
        args = ["record", "--pid", str(workload.pid), "--duration", "3", "--rate", "200"] + list(extra)
        for path in files.values():
            args += ["-o", path]
        result = run_pysample(pysample, args)
        check(result.returncode == 0, "record failed with %d" % result.returncode)
        check(workload.proc.poll() is None, "the workload died while being profiled")
        check_dump(pysample, workload.pid, names)
    summary = result.stderr[result.stderr.index("%Own"):]
    check(summary.splitlines() == summary.split("\n")[:-1] and not re.search("[\x00-\x09\x0b-\x1f\x7f]", summary),
          "the summary on stderr has control characters or broken lines")
    return files, names, python2


def test_hostile(pysample, python, tmp):
    """Markup, quotes, backslashes, control characters, NUL, lone surrogates, emoji, invalid UTF-8
    (Python 2) and a million-character name, as function and file names, in every output format."""
    files, names, python2 = record_hostile(pysample, python, tmp)
    first_line = markers("hostile_names.py")["burn"]
    check_svg(files[".svg"], names)
    check_json_names(files[".speedscope.json"], names, lambda data: data["shared"]["frames"])
    check_json_names(files[".json"], names, chrome_frames)
    check_collapsed(files[".txt"], names)
    check_text(files[".prof.txt"], names, first_line)
    check_pstats_names(files[".pstats"], names, first_line)
    huge = [name for tag, name, _ in names if tag == "h99"][0]
    check(len(huge) < 4200 and huge.endswith("\u2026[truncated, 1000004 %s]" % ("bytes" if python2 else "characters")),
          "the million-character name was not cut with a marker: ...%r" % huge[-60:])


def test_hostile_browser(pysample, python, tmp):
    """The hostile recording opened in headless Chromium: the flame graph works (hover, zoom,
    search) with no page error, and speedscope and the Chrome trace checker read their files.
    Recorded by function (--nolineno): eleven functions, each split by line, would draw frames
    so narrow (about 36 px) that a name's label is sometimes cut to nothing by chance."""
    files, names, _ = record_hostile(pysample, python, tmp, ["--nolineno"])
    browser = os.path.join(ROOT, "tests", "browser")
    run_checker(["node", os.path.join(browser, "flamegraph.mjs"), files[".svg"], "h01", "h02", "h99"])
    exact = [name for tag, name, _ in names if tag in ("h01", "h02", "h03")]
    run_checker(["node", os.path.join(browser, "speedscope.mjs"), files[".speedscope.json"]] + exact)
    run_checker([SYSTEM_PYTHON, os.path.join(HERE, "check_chrome.py"), files[".json"]] + exact)


TESTS = {name[5:]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    sys.exit(main(TESTS))
