#!/usr/bin/env python3
"""End-to-end tests of `pysample top`: the live screen in a real terminal (tmux), the plain text it
prints when its output is not a terminal, and the ways it ends.

Usage: top_test.py --pysample BIN --python INTERPRETER
"""
import argparse
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_e2e import WORKLOADS, Failure, Workload, check, interpreter_command, markers, python_version  # noqa: E402

ROW = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+([\d.]+)s\s+([\d.]+)s\s+(\S+) \((.*)\)\s*$")
TITLE = "pysample top - pid "


def parse_rows(lines):
    """The table rows of one screen or one printed table: dicts in the order shown."""
    rows = []
    for line in lines:
        match = ROW.match(line)
        if match:
            own, total, own_time, total_time, function, location = match.groups()
            rows.append({"own": float(own), "total": float(total), "own_time": float(own_time),
                         "total_time": float(total_time), "function": function, "location": location})
    return rows


def row_of(rows, function):
    return next((row for row in rows if row["function"] == function), None)


def samples_in(lines):
    for line in lines:
        match = re.match(r"^Samples: (\d+) ", line)
        if match:
            return int(match.group(1))
    return 0


def wait_for(condition, what, timeout=60, state=lambda: ""):
    """Polls `condition` until it returns something true; fails after `timeout` seconds, showing `state()`."""
    deadline = time.time() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.time() > deadline:
            raise Failure("timed out after %ds waiting for %s; last seen:\n%s" % (timeout, what, state()))
        time.sleep(0.1)


def def_line(workload, function):
    with open(os.path.join(WORKLOADS, workload)) as source:
        for number, line in enumerate(source, 1):
            if line.startswith("def %s(" % function):
                return number
    raise Failure("no def %s in %s" % (function, workload))


class Tmux:
    """A private tmux server, its socket in `tmp`, with one session running a shell command."""

    def __init__(self, tmp):
        self.socket = os.path.join(tmp, "tmux.socket")
        self.config = os.path.join(tmp, "tmux.conf")
        with open(self.config, "w") as config:
            # A pane whose command fails early stays, so its last screen can still be shown.
            config.write("set -g remain-on-exit on\nset -g status off\n")

    def run(self, *args):
        result = subprocess.run(["tmux", "-S", self.socket, "-f", self.config] + list(args),
                                capture_output=True, text=True, timeout=30)
        check(result.returncode == 0, "tmux %s failed: %s" % (" ".join(args), result.stderr))
        return result.stdout

    def start(self, command, width=160, height=40):
        self.run("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), command)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top").splitlines()

    def query(self, fmt):
        return self.run("display-message", "-p", "-t", "top", fmt).strip()

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def kill(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)

    def wait_for_screen(self, predicate, what, timeout=60):
        """Captures the screen until `predicate(lines)` holds (a redraw may be caught half done); returns the lines."""
        def satisfied():
            lines = self.screen()
            return lines if predicate(lines) else None
        return wait_for(satisfied, what, timeout, state=lambda: "\n".join(self.screen()))


def test_screen(pysample, python, tmp):
    """The full-screen view under tmux: header, order, keys, resizing, and the terminal given back on q."""
    version = "%d.%d" % python_version(python)
    before, after = os.path.join(tmp, "stty.before"), os.path.join(tmp, "status-and-stty.after")
    tmux = Tmux(tmp)
    with Workload(python, "split.py", 300) as workload:
        # Its exit status and the terminal's modes after it, written whole or not at all.
        command = ("stty -g > {before}; {pysample} top --pid {pid}; code=$?; "
                   "(echo $code; stty -g) > {after}.tmp; mv {after}.tmp {after}; exec sleep 600").format(
            before=before, pysample=shlex.quote(pysample), pid=workload.pid, after=after)
        try:
            tmux.start("sh -c %s" % shlex.quote(command))

            def split_sorted_by_own(lines):
                names = [row["function"] for row in parse_rows(lines)]
                return (samples_in(lines) >= 100 and "work_70" in names and "work_30" in names and
                        names.index("work_70") < names.index("work_30"))

            lines = tmux.wait_for_screen(split_sorted_by_own, "work_70 above work_30 after 100 samples")
            print("\n".join(lines[:12]))
            check(lines[0].startswith("%s%d - Python %s" % (TITLE, workload.pid, version)),
                  "title line does not name the pid and Python %s: %r" % (version, lines[0]))
            check(any(re.match(r"Threads: 1 \(\d active, \d idle\).*Names: \S", line) for line in lines),
                  "no thread count and name")
            check(any("Sort: %Own" in line for line in lines), "no sort indicator for %Own")
            check(any(re.search(r"\d+\.\d Hz achieved, 100 Hz asked", line) for line in lines), "no sampling rate")
            check(tmux.query("#{alternate_on} #{cursor_flag}") == "1 0",
                  "the view is not on the alternate screen with the cursor hidden")
            work_70 = row_of(parse_rows(lines), "work_70")
            check(work_70["location"] == "%s:%d" % (workload.path, def_line("split.py", "work_70")),
                  "function rows should name the file and first line: %r" % work_70)

            def sorted_by(key, name, first=None):
                def sorted_rows(lines):
                    rows = parse_rows(lines)
                    values = [row[key] for row in rows]
                    return (any("Sort: %s " % name in line for line in lines) and values and
                            values == sorted(values, reverse=True) and (first is None or rows[0]["function"] in first))
                tmux.wait_for_screen(sorted_rows, "rows sorted by %s" % name)

            for key, column, name, first in (("2", "total", "%Total", ("<module>", "main")),
                                             ("3", "own_time", "OwnTime", None),
                                             ("4", "total_time", "TotalTime", None),
                                             ("1", "own", "%Own", None)):
                tmux.keys(key)
                sorted_by(column, name, first)

            loop70 = markers("split.py")["loop70"]
            tmux.keys("l")
            tmux.wait_for_screen(lambda lines: any(row["function"] == "work_70" and
                                                   row["location"].endswith(":%d" % loop70)
                                                   for row in parse_rows(lines)),
                                 "rows by line to show work_70 at its loop line %d" % loop70)

            tmux.keys("?")
            tmux.wait_for_screen(lambda lines: any("r reset counts" in line for line in lines), "the help footer")
            before_reset = samples_in(tmux.screen())
            tmux.keys("r")
            tmux.wait_for_screen(lambda lines: any("counts reset" in line for line in lines) and
                                 samples_in(lines) < before_reset, "the counts to be reset")
            tmux.keys("?")
            tmux.wait_for_screen(lambda lines: not any("r reset counts" in line for line in lines),
                                 "the help to close")

            tmux.run("resize-window", "-t", "top", "-x", "90", "-y", "14")
            tmux.wait_for_screen(lambda lines: len(lines) == 14 and lines[-1].startswith("Keys:") and
                                 all(len(line) <= 90 for line in lines) and parse_rows(lines),
                                 "the view to fit a 90x14 terminal with the keys on the last line")

            tmux.keys("q")
            wait_for(lambda: os.path.exists(after), "pysample to exit after q", timeout=30,
                     state=lambda: "\n".join(tmux.screen()))
            with open(after) as f:
                code, modes_after = f.read().split("\n", 1)
            check(code == "0", "pysample top exited with %s after q" % code)
            check(tmux.query("#{alternate_on} #{cursor_flag}") == "0 1",
                  "after q the terminal is still on the alternate screen or the cursor is hidden")
            check(not any("%Own" in line for line in tmux.screen()), "the table is left on the normal screen")
            with open(before) as f:
                check(f.read() == modes_after, "the terminal modes were not restored (stty -g differs)")
            check(workload.proc.poll() is None, "the workload died while being watched")
        finally:
            tmux.kill()


class Reader:
    """Collects a process's output from a pipe as it comes."""

    def __init__(self, stream):
        self.data = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.read, args=(stream,), daemon=True)
        self.thread.start()

    def read(self, stream):
        for chunk in iter(lambda: stream.read1(4096), b""):
            with self.lock:
                self.data += chunk

    def text(self):
        with self.lock:
            return self.data.decode("utf-8", "replace")


def split_tables(text):
    """The complete tables printed so far, each a list of lines. A table is its title, header lines, a
    blank line, the column titles and rows, and a blank line that ends it."""
    tables, current, blanks = [], None, 0
    for line in text.split("\n"):
        if line.startswith(TITLE):
            current, blanks = [line], 0
        elif current is not None and line == "":
            blanks += 1
            if blanks == 2:
                tables.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return tables


def last_table_rows(text, what):
    tables = split_tables(text)
    check(tables, "%s: no table printed:\n%s" % (what, text[-2000:]))
    return parse_rows(tables[-1])


def split_off(table):
    """Why the 70/30 split in a table is off, or None when it is not. Shares of each other, not of the
    samples: in CPU time a thread waiting for a CPU on a loaded machine counts for less than the samples
    taken. The tolerance is four standard errors of a 70/30 split over the samples the two stand for."""
    rows = parse_rows(table)
    work_70, work_30 = row_of(rows, "work_70"), row_of(rows, "work_30")
    if not work_70 or not work_30:
        return "work_70 or work_30 missing from the table"
    counted = (work_70["own"] + work_30["own"]) / 100 * samples_in(table)
    split = work_70["own"] / (work_70["own"] + work_30["own"]) if counted > 0 else 0.0
    tolerance = max(0.1, 4 * math.sqrt(0.7 * 0.3 / max(counted, 1)))
    if abs(split - 0.7) <= tolerance:
        return None
    return "expected about 70/30: work_70 %.1f%%, work_30 %.1f%% of %d samples" % (
        work_70["own"], work_30["own"], samples_in(table))


def test_plain(pysample, python, tmp):
    """With stdout a pipe: plain tables every second, no escape sequences, the 30/70 split; Ctrl-C ends it."""
    with Workload(python, "split.py", 300) as workload:
        proc = subprocess.Popen([pysample, "top", "--pid", str(workload.pid)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out = Reader(proc.stdout)
        try:
            # The table is cumulative. On a loaded machine the thread runs in bursts between waits for a
            # core, and a sample after a burst counts for the whole burst at one place in the loop, so the
            # split strays further than independent samples would. Like the recording tests, wait for a
            # table with twice the samples while the split is off, and fail only when the longest is off.
            needed = 300
            for attempt in range(3):
                def split_shown():
                    tables = split_tables(out.text())
                    rows = parse_rows(tables[-1]) if tables else []
                    work_70, work_30 = row_of(rows, "work_70"), row_of(rows, "work_30")
                    return (len(tables) >= 2 and samples_in(tables[-1]) >= needed and work_70 and work_30 and
                            work_70["own"] > work_30["own"])

                wait_for(split_shown, "two tables, the last with %d samples and work_70 above work_30" % needed,
                         timeout=60 * (attempt + 1), state=lambda: out.text()[-3000:])
                if split_off(split_tables(out.text())[-1]) is None:
                    break
                needed = samples_in(split_tables(out.text())[-1]) * 2
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.thread.join(timeout=10)
        stderr = proc.stderr.read().decode("utf-8", "replace")
        text = out.text()
        print(text[-1500:], stderr)
        check(code == 0, "pysample top exited with %d after SIGINT: %s" % (code, stderr))
        check("\x1b" not in text, "escape sequences in the output to a pipe")
        tables = split_tables(text)
        check(len(tables) >= 2, "expected at least 2 tables, got %d" % len(tables))
        for table in tables:
            check(table[0].startswith("%s%d - Python " % (TITLE, workload.pid)), "bad title: %r" % table[0])
        last = tables[-1]
        rows = parse_rows(last)
        work_70, work_30 = row_of(rows, "work_70"), row_of(rows, "work_30")
        check(work_70 and work_30, "work_70 or work_30 missing from the last table:\n%s" % "\n".join(last))
        check(samples_in(last) >= 300, "too few samples in the last table: %d" % samples_in(last))
        off = split_off(last)
        check(off is None, off)
        check(abs(work_70["own_time"] + work_30["own_time"] - work_70["total_time"] - work_30["total_time"]) < 0.05,
              "own and total time of leaf functions differ")

        # --duration ends it by itself, --rows bounds each table, --native still finds the Python functions.
        result = subprocess.run([pysample, "top", "--pid", str(workload.pid), "--duration", "2", "--interval", "0.5",
                                 "--rows", "2"], capture_output=True, text=True, timeout=60)
        check(result.returncode == 0, "--duration: exit %d: %s" % (result.returncode, result.stderr))
        tables = split_tables(result.stdout)
        # One table at least every 0.5 s and one at the end; a loaded machine may delay one past the end.
        check(len(tables) >= 2, "--interval 0.5 for 2 s printed %d tables:\n%s" % (len(tables), result.stdout))
        check(all(len(parse_rows(table)) <= 2 for table in tables), "--rows 2 printed more rows")
        result = subprocess.run([pysample, "top", "--pid", str(workload.pid), "--duration", "3", "--native",
                                 "--rows", "1000"], capture_output=True, text=True, timeout=60)
        check(result.returncode == 0, "--native: exit %d: %s" % (result.returncode, result.stderr))
        rows = last_table_rows(result.stdout, "--native")
        # The first native sample loads the interpreter's symbols and line tables, which can take a while.
        check(row_of(rows, "main") and (row_of(rows, "work_70") or row_of(rows, "work_30")),
              "--native: Python functions missing:\n%s" % result.stdout[-2000:])


def test_ends(pysample, python, tmp):
    """The target exiting ends top (exit 0); launch mode gives the command's status; errors as record's."""
    with Workload(python, "split.py", 4) as workload:
        result = subprocess.run([pysample, "top", "--pid", str(workload.pid)], capture_output=True, text=True,
                                timeout=60)
    print(result.stderr)
    check(result.returncode == 0, "target exit: pysample top exited with %d" % result.returncode)
    check("process %d exited" % workload.pid in result.stderr, "no line saying the process exited: %r" %
          result.stderr)
    check(row_of(parse_rows(result.stdout.splitlines()), "work_70"), "no table before the exit")

    command, script = interpreter_command(python, "exit_code.py")
    result = subprocess.run([pysample, "top", "--"] + command + ["1.5", "7"], capture_output=True, text=True,
                            timeout=60)
    check(result.returncode == 7, "launch mode: exit %d, expected the command's 7" % result.returncode)
    burn = row_of(last_table_rows(result.stdout, "launch mode"), "burn")
    check(burn and burn["location"].startswith(script), "launch mode: burn() missing:\n%s" % result.stdout[-2000:])

    with open("/proc/sys/kernel/pid_max") as f:
        missing = int(f.read()) - 1
    while os.path.exists("/proc/%d" % missing):
        missing -= 1
    result = subprocess.run([pysample, "top", "--pid", str(missing)], capture_output=True, text=True, timeout=60)
    check(result.returncode == 3, "no such pid: exit %d, expected 3" % result.returncode)
    check("no process" in result.stderr and "\x1b" not in result.stdout, "no such pid: %r" % result.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pysample", required=True)
    parser.add_argument("--python", required=True)
    args = parser.parse_args()
    pysample = os.path.abspath(args.pysample)
    with tempfile.TemporaryDirectory(prefix="pysample-top-") as tmp:
        for test in (test_screen, test_plain, test_ends):
            started = time.time()
            try:
                test(pysample, args.python, tmp)
            except Failure as failure:
                print("FAILED top %s (%s): %s" % (test.__name__, args.python, failure))
                return 1
            print("passed top %s (%s) in %.1fs" % (test.__name__, args.python, time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
