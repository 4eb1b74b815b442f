#!/usr/bin/env python3
"""`--async`: asyncio's tasks read out of a process by `dump`, and samples rebuilt along their await
chains by `record` and `top`, against tests/e2e/workloads/async_service.py, a service whose tasks
have names and a known await graph. What Python itself says of its waiting tasks' coroutine frames
(the workload prints it before 'ready') is what pysample must show for them.

  dump       `dump --async`: after the thread dump, one section for the loop's thread with its tree of
             tasks: main awaiting fetcher-1..3 (each running parse() or waiting at its sleep(0)),
             sleeper, event-waiter and queue-reader at their waits (asyncio's sleep, Event.wait,
             Queue.get); `--json`: the same graph, awaits and awaited_by mirroring each other
  record     `record --async`: parse()'s samples rebuilt as <task main>, main's frame, <task
             fetcher-N>, the fetcher's frame and parse, without loop plumbing after the first marker;
             without --async, the thread's stacks as before (the loop's plumbing, no markers)
  idle       `record --async --idle`: each waiting task counted at every sample, under its marker,
             ending in the frames where it waits
  top        `top --async` to a pipe: marker rows in its table
  taskgroup  (3.11+) main's children made in an asyncio.TaskGroup: main awaits the group
  eager      (3.12+) asyncio.eager_task_factory, and eager tasks sampled during their eager start
  two_loops  a thread "loop-2" running a loop of its own: a section per loop, each under its thread,
             and each loop's tasks under its own thread's root in `record --threads`
  shared     a task awaited by two tasks: said to be, in the tree (shown under one of them) and in JSON,
             and marked `<task shared (awaited by 2)>` under either in the stacks
  uvloop     the service under uvloop (an interpreter with uvloop: Debian's python3-uvloop)
  core       `dump --async --core` of a gcore of the service (gdb's gcore)
  no_loop    a process without asyncio, and one whose loops do not run: one line saying so
  old        (before 3.8) one line saying that asyncio tasks are read from 3.8, the usual dump still
  selftest   the parsers of this file on hand-written output (no pysample, no interpreter)

Usage: async_test.py --pysample BIN --python INTERPRETER [TEST...]
Without TEST, runs every test but `old` and `selftest` (before 3.8: `old` alone), and says which
of them it skipped and why; exits 77 when none applied.
"""
import argparse
import ast
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_e2e import (SKIP_CODE, WORKLOADS, Failure, Skip, TornLines, Workload, check,  # noqa: E402
                     interpreter_command, markers, parse_collapsed, parse_frame, python_version, record,
                     record_until, run_pysample)
from top_test import split_tables  # noqa: E402

WORKLOAD = "async_service.py"
M = markers(WORKLOAD)


def function_lines():
    """{function name: the range of its lines} of the workload's functions."""
    with open(os.path.join(WORKLOADS, WORKLOAD)) as source:
        tree = ast.parse(source.read())
    return {node.name: range(node.lineno, node.end_lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


LINES = function_lines()

# The service's loops: the task that gathers, its children, what they run and where they call parse(),
# and (main loop) the tasks that wait, with the function and asyncio file their frames end in.
MAIN_LOOP = {"parent": "main", "children": ["fetcher-1", "fetcher-2", "fetcher-3"], "worker": "fetcher",
             "call": M["fetchparse"], "idle": {"sleeper": ("sleep", "tasks.py"), "event-waiter": ("wait", "locks.py"),
                                               "queue-reader": ("get", "queues.py")}}
SECOND_LOOP = {"parent": "second-main", "children": ["second-worker-1", "second-worker-2"],
               "worker": "second_worker", "call": M["secondparse"], "idle": {}}
EAGER_TASKS = ("spawner", "eager-burst")  # tasks of --eager, checked by the eager test alone
SHARED_TASKS = ("shared", "waiter-a", "waiter-b")  # tasks of --shared, checked by the shared test alone

SECTION = re.compile(r'^Event loop in thread (\d+)(?: "(.*)")? \((.+)\): (\d+) tasks?$')
TASK_LINE = re.compile(r"^((?:\u2502   |    )*)(\u251c\u2500\u2500 |\u2514\u2500\u2500 )\(T\) (.*?) "
                       r"\[(running|waiting|scheduled|done)\](?: awaits (.*?))?(?: \(awaited by (\d+) tasks\))?$")
MIDDLE, LAST, BAR = "\u251c\u2500\u2500 ", "\u2514\u2500\u2500 ", "\u2502"
THREAD_LINE = re.compile(r'^Thread (\d+)(?: \(\d+ in its PID namespace\))? "(.*?)" \(')
NO_LOOP = "no asyncio event loop"
TOO_OLD = "asyncio tasks are read for Python 3.8 and later"
STATES = ("running", "waiting", "scheduled", "done")
AWAIT_KINDS = ("task", "gather", "taskgroup", "wait", "future", "other")
# The event loop's own machinery, which must not appear once the first task marker is reached.
PLUMBING = {"run_forever", "_run_once", "_run", "__step", "__step_run_and_handle_result", "__wakeup", "run",
            "run_until_complete", "_run_until_complete_cb", "select", "poll", "_process_events"}
LOOP_FILES = {"base_events.py", "events.py", "runners.py", "selector_events.py", "unix_events.py", "selectors.py"}


def short(function):
    """A qualified name's last part: `Event.wait` -> `wait` (names are qualified from 3.11)."""
    return function.rsplit(".", 1)[-1]


class Service(Workload):
    """async_service.py with some flags, once ready. self.info is what it said of itself: its loops'
    types, threads' ids and the coroutine frames of its waiting tasks (self.chains)."""

    def __init__(self, python, *flags, seconds=600):
        super().__init__(python, WORKLOAD, seconds, *flags, preamble=1)
        check(self.preamble and self.preamble[-1].startswith("info "), "no info line before ready: %r" % self.preamble)
        self.info = json.loads(self.preamble[-1][len("info "):])
        self.chains = {name: [tuple(frame) for frame in frames] for name, frames in self.info["chains"].items()}
        self.asyncio_dir = self.info["asyncio"]

    def in_asyncio(self, frame):
        return frame[1] is not None and frame[1].startswith(self.asyncio_dir + "/")


def task_marker(frame):
    """(name, awaited by) of a `<task NAME>` or `<task NAME (awaited by M)>` marker frame, else None."""
    match = re.match(r"^<task (.*?)(?: \(awaited by (\d+)\))?>$", frame[0])
    if not match or frame[1] is not None:
        return None
    return match.group(1), int(match.group(2) or 1)


# --- dump: parsing --------------------------------------------------------------------------------------------


def parse_sections(text):
    """The event-loop sections of `dump --async`'s output, each {thread_id, thread_name, loop_type, count,
    tasks, roots, position}; each task {name, state, awaits, awaited_by, frames, children}. The tree's drawing
    is checked on the way: prefixes, connectors and the frames' prefixes."""
    sections = []
    current, stack = None, []
    for position, line in enumerate(text.splitlines()):
        header = SECTION.match(line)
        check(header or not line.startswith("Event loop"), "a section header not of the form "
              "`Event loop in thread TID \"NAME\" (TYPE): K tasks`: %r" % line)
        if header:
            current = {"thread_id": int(header.group(1)), "thread_name": header.group(2), "loop_type": header.group(3),
                       "count": int(header.group(4)), "tasks": [], "roots": [], "position": position}
            sections.append(current)
            stack = []
            continue
        if current is None:
            continue
        if not line.strip():
            current = None  # a blank line ends a section
            continue
        task = TASK_LINE.match(line)
        if task:
            prefix, connector, name, state, awaits, awaited_by = task.groups()
            check(len(prefix) % 4 == 0, "task line with a prefix of %d characters: %r" % (len(prefix), line))
            depth = len(prefix) // 4
            check(depth <= len(stack), "task line %r deeper than its parent's children" % line)
            del stack[depth:]
            parent = stack[-1] if stack else None
            want = parent["child_prefix"] if parent else ""
            check(prefix == want, "task line %r: prefix %r where its parent's children have %r" % (line, prefix, want))
            check(awaited_by is None or int(awaited_by) > 1, "`(awaited by %s tasks)` in %r" % (awaited_by, line))
            node = {"name": name, "state": state, "awaits": awaits, "awaited_by": int(awaited_by or 1), "frames": [],
                    "children": [], "connector": connector, "line": line, "frame_prefixes": [],
                    "child_prefix": prefix + (BAR + "   " if connector == MIDDLE else "    ")}
            (parent["children"] if parent else current["roots"]).append(node)
            current["tasks"].append(node)
            stack.append(node)
            continue
        frame = re.match("^([%s ]*)(\\S.*)$" % BAR, line)
        check(frame and stack, "unexpected line in an event loop section: %r" % line)
        stack[-1]["frames"].append(parse_frame(frame.group(2)))
        stack[-1]["frame_prefixes"].append((frame.group(1), line))
    for section in sections:
        for siblings in [section["roots"]] + [task["children"] for task in section["tasks"]]:
            for index, node in enumerate(siblings):
                want = LAST if index == len(siblings) - 1 else MIDDLE
                check(node["connector"] == want, "%r: %r where %r was due (last sibling or not)" %
                      (node["line"], node["connector"], want))
        for node in section["tasks"]:
            want = node["child_prefix"] + (BAR + " " if node["children"] else "  ")
            for prefix, line in node["frame_prefixes"]:
                check(prefix in (want, want + " "), "frame line %r of task %s: prefix %r, expected %r" %
                      (line, node["name"], prefix, want))
    return sections


def thread_names(text):
    """{tid: name} of the thread dump's `Thread TID "NAME"` lines, and the position of the last one."""
    names, last = {}, -1
    for position, line in enumerate(text.splitlines()):
        match = THREAD_LINE.match(line)
        if match:
            names[int(match.group(1))] = match.group(2)
            last = position
    return names, last


def json_sections(document):
    """The loops of `dump --async --json`, checked for consistency (awaits and awaited_by mirror each other,
    the running task is the one in state running), in the shape parse_sections() gives."""
    info = document.get("asyncio")
    check(isinstance(info, dict), "no \"asyncio\" object in the JSON document: keys %r" % sorted(document))
    check(info.get("available") is True, "asyncio not available: %r" % info)
    check("reason" not in info, "a reason while available: %r" % info.get("reason"))
    check(isinstance(info.get("tasks_unreadable"), int), "tasks_unreadable: %r" % info.get("tasks_unreadable"))
    sections = []
    for loop in info["loops"]:
        for key in ("thread_id", "thread_name", "loop_type", "loop_address", "running_task", "tasks"):
            check(key in loop, "loop without %r: %r" % (key, sorted(loop)))
        check(isinstance(loop["loop_address"], int), "loop_address %r" % loop["loop_address"])
        tasks = loop["tasks"]
        by_address = {}
        for task in tasks:
            for key in ("address", "name", "state", "frames", "awaits", "awaited_by"):
                check(key in task, "task without %r: %r" % (key, task))
            check(isinstance(task["address"], int) and task["address"] not in by_address,
                  "task address %r missing or repeated" % task["address"])
            check(task["state"] in STATES, "task %s in state %r" % (task["name"], task["state"]))
            for frame in task["frames"]:
                check(isinstance(frame.get("function"), str) and isinstance(frame.get("filename"), str) and
                      isinstance(frame.get("line"), int), "task %s: frame %r" % (task["name"], frame))
            awaits = task["awaits"]
            if awaits is not None:
                check(awaits.get("kind") in AWAIT_KINDS and isinstance(awaits.get("type"), str) and
                      isinstance(awaits.get("tasks"), list), "task %s awaits %r" % (task["name"], awaits))
            by_address[task["address"]] = task
        for task in tasks:
            for address in (task["awaits"] or {}).get("tasks", []):
                check(address in by_address, "task %s awaits %#x, no task of the loop" % (task["name"], address))
                check(task["address"] in by_address[address]["awaited_by"],
                      "task %s awaits %s, whose awaited_by %r lacks it" %
                      (task["name"], by_address[address]["name"], by_address[address]["awaited_by"]))
            for address in task["awaited_by"]:
                check(address in by_address, "task %s awaited by %#x, no task of the loop" % (task["name"], address))
                check(task["address"] in (by_address[address]["awaits"] or {}).get("tasks", []),
                      "task %s awaited by %s, whose awaits %r lacks it" %
                      (task["name"], by_address[address]["name"], by_address[address]["awaits"]))
        # One task runs, the loop's current one; but a task that starts another eagerly runs on below it.
        running = [task["address"] for task in tasks if task["state"] == "running"]
        check(loop["running_task"] in running if running else loop["running_task"] is None,
              "running_task %r, the tasks in state running %r" % (loop["running_task"], running))
        nodes = {}
        for task in tasks:
            nodes[task["address"]] = {
                "name": task["name"], "state": task["state"], "awaits": task["awaits"],
                "awaited_by": max(len(task["awaited_by"]), 1), "children": [],
                "frames": [(frame["function"], frame["filename"], frame["line"]) for frame in task["frames"]]}
        for task in tasks:
            nodes[task["address"]]["children"] = [nodes[a] for a in (task["awaits"] or {}).get("tasks", [])]
        sections.append({"thread_id": loop["thread_id"], "thread_name": loop["thread_name"],
                         "loop_type": loop["loop_type"], "count": len(tasks), "tasks": list(nodes.values()),
                         "roots": [nodes[t["address"]] for t in tasks if not t["awaited_by"]], "json": loop})
    return sections


# --- dump: what the service's loops must show ---------------------------------------------------------------------


def check_worker_frames(task, spec, service, what):
    """A fetcher's (or second worker's) frames: running parse() or its own loop, else waiting at
    parse()'s sleep(0), with asyncio's sleep (and what it awaits) on top."""
    name, frames, path = task["name"], task["frames"], service.path
    check(task["state"] in ("running", "scheduled", "waiting"), "%s: %s in state %s" % (what, name, task["state"]))
    check(frames and frames[0][:2] == (spec["worker"], path),
          "%s: %s's outermost frame is not %s of %s: %r" % (what, name, spec["worker"], path, frames))
    if task["state"] == "running":
        check(frames[0][2] in LINES[spec["worker"]], "%s: %s at line %s" % (what, name, frames[0][2]))
        if len(frames) > 1 and frames[1][0] != "parse":
            check(all(f[1] == path and f[0] in ("announce", "has_run") for f in frames[1:]),
                  "%s: running %s calls %r" % (what, name, frames[1:]))
            return
        rest = frames[2:]
        check(len(frames) < 2 or (frames[1][1] == path and frames[1][2] in LINES["parse"]),
              "%s: running %s: parse frame %r" % (what, name, frames[1:2]))
    else:
        check(frames[:2] == [(spec["worker"], path, spec["call"]), ("parse", path, M["parseyield"])],
              "%s: %s (%s) is not waiting at parse()'s sleep(0): %r" % (what, name, task["state"], frames))
        rest = frames[2:]
        check(rest and short(rest[0][0]) == "sleep", "%s: %s waits in parse() without asyncio's sleep on top: %r" %
              (what, name, frames))
    check(all(service.in_asyncio(f) for f in rest), "%s: %s: frames above parse() outside asyncio: %r" %
          (what, name, rest))


def check_loop(section, service, spec, thread_id, thread_name, what, extra=()):
    """One loop of the service, from the text dump or the JSON document: its header, and its tree against
    `spec` (MAIN_LOOP or SECOND_LOOP); the tasks named in `extra` may be there too, unchecked."""
    loop_type = service.info["loops"][thread_name]
    check(section["thread_id"] == thread_id, "%s: loop in thread %r, expected %d" % (what, section["thread_id"],
                                                                                   thread_id))
    check(section["thread_name"] == thread_name, "%s: thread name %r, expected %r" %
          (what, section["thread_name"], thread_name))
    check(section["loop_type"] in (loop_type, loop_type.rsplit(".", 1)[-1]),
          "%s: loop type %r, the loop is a %s" % (what, section["loop_type"], loop_type))
    tasks = section["tasks"]
    check(section["count"] == len(tasks), "%s: %d tasks said, %d shown" % (what, section["count"], len(tasks)))
    # A finished task still referenced is listed too (done), maybe beside a newer one of the same name.
    names = [task["name"] for task in tasks if task["state"] != "done"]
    check(len(set(names)) == len(names), "%s: tasks shown twice: %r" % (what, names))
    expected = {spec["parent"]} | set(spec["children"]) | set(spec["idle"])
    check(expected <= set(names) and set(names) <= expected | set(extra),
          "%s: tasks %r, expected %r" % (what, sorted(names), sorted(expected)))
    by_name = {task["name"]: task for task in tasks}
    roots = {task["name"] for task in section["roots"]}
    check({spec["parent"]} | set(spec["idle"]) <= roots and roots <= {spec["parent"]} | set(spec["idle"]) | set(extra),
          "%s: root tasks %r, expected %r" % (what, sorted(roots), sorted({spec["parent"]} | set(spec["idle"]))))
    parent = by_name[spec["parent"]]
    check(sorted(child["name"] for child in parent["children"]) == spec["children"],
          "%s: %s awaits %r, expected %r" % (what, spec["parent"], [c["name"] for c in parent["children"]],
                                              spec["children"]))
    check(parent["state"] == "waiting" and parent["awaits"], "%s: %s is %s, awaiting %r" %
          (what, spec["parent"], parent["state"], parent["awaits"]))
    check(parent["frames"] == service.chains[spec["parent"]], "%s: %s's frames %r, Python says %r" %
          (what, spec["parent"], parent["frames"], service.chains[spec["parent"]]))
    running = [task["name"] for task in tasks if task["state"] == "running" and task["name"] not in extra]
    check(len(running) <= 1, "%s: several tasks running: %r" % (what, running))
    for name in spec["children"]:
        task = by_name[name]
        check(not task["children"] and task["awaited_by"] == 1, "%s: %s awaits %r, awaited by %d" %
              (what, name, [c["name"] for c in task["children"]], task["awaited_by"]))
        check_worker_frames(task, spec, service, what)
    for name, (function, source) in spec["idle"].items():
        task = by_name[name]
        chain = service.chains[name]
        check(chain[-1][1] == os.path.join(service.asyncio_dir, source) and short(chain[-1][0]) == function,
              "the workload says %s waits in %r, not in %s of asyncio's %s" % (name, chain[-1], function, source))
        check(task["state"] == "waiting" and task["awaits"] and not task["children"],
              "%s: %s is %s, awaits %r, with children %r" % (what, name, task["state"], task["awaits"],
                                                             [c["name"] for c in task["children"]]))
        check(task["frames"] == chain, "%s: %s's frames %r, Python says %r" % (what, name, task["frames"], chain))


def dump_text(pysample, args):
    result = run_pysample(pysample, ["dump", "--async"] + args)
    print(result.stdout)
    check(result.returncode == 0, "dump --async %s exited with %d: %s" % (" ".join(args), result.returncode,
                                                                         result.stderr))
    return result.stdout


def dump_json(pysample, args):
    result = run_pysample(pysample, ["dump", "--async", "--json"] + args)
    check(result.returncode == 0, "dump --async --json %s exited with %d: %s" % (" ".join(args), result.returncode,
                                                                                result.stderr))
    try:
        document = json.loads(result.stdout)
    except ValueError as error:
        raise Failure("dump --async --json printed no JSON document (%s): %r" % (error, result.stdout[:2000]))
    print(json.dumps(document.get("asyncio"), indent=1)[:6000])
    return document


def check_text_dump(text, service, loops, extra=()):
    """`dump --async` of the service: the thread dump, then a section for each loop of `loops`
    ([(thread name, spec)]), under that thread's id and name."""
    names, last_thread = thread_names(text)
    sections = parse_sections(text)
    check(names, "no thread in the dump")
    check(len(sections) == len(loops), "%d event loop sections, expected %d" % (len(sections), len(loops)))
    check(all(section["position"] > last_thread for section in sections), "event loop sections before the threads")
    check(NO_LOOP not in text, "%r said of a process running %d loops" % (NO_LOOP, len(loops)))
    for thread_name, spec in loops:
        tid = service.info["threads"][thread_name]
        check(names.get(tid) == thread_name, "thread %d is %r in the thread dump, expected %r" %
              (tid, names.get(tid), thread_name))
        section = [s for s in sections if s["thread_id"] == tid]
        check(section, "no event loop section for thread %d (%s)" % (tid, thread_name))
        check_loop(section[0], service, spec, tid, thread_name, "dump, thread %s" % thread_name, extra)


def check_json_dump(document, service, loops, extra=(), awaits_kind="gather"):
    """`dump --async --json` of the service: the same, with the kinds of awaits and task addresses."""
    names = {thread["id"]: thread["name"] for thread in document["threads"]}
    sections = json_sections(document)
    check(document["asyncio"]["tasks_unreadable"] == 0, "%d tasks unreadable with the threads stopped" %
          document["asyncio"]["tasks_unreadable"])
    check(len(sections) == len(loops), "%d loops in the JSON document, expected %d" % (len(sections), len(loops)))
    for thread_name, spec in loops:
        tid = service.info["threads"][thread_name]
        check(names.get(tid) == thread_name, "thread %d is %r in the JSON threads, expected %r" %
              (tid, names.get(tid), thread_name))
        section = [s for s in sections if s["thread_id"] == tid]
        check(section, "no loop of thread %d (%s) in the JSON document" % (tid, thread_name))
        what = "JSON, thread %s" % thread_name
        check_loop(section[0], service, spec, tid, thread_name, what, extra)
        by_name = {task["name"]: task for task in section[0]["tasks"]}
        kind = awaits_kind if spec is MAIN_LOOP else "gather"
        check(by_name[spec["parent"]]["awaits"]["kind"] == kind, "%s: %s awaits %r, expected a %s" %
              (what, spec["parent"], by_name[spec["parent"]]["awaits"], kind))
        for name in spec["idle"]:
            check(by_name[name]["awaits"]["kind"] == "future" and not by_name[name]["awaits"]["tasks"],
                  "%s: %s awaits %r, expected a future" % (what, name, by_name[name]["awaits"]))


def check_dumps(pysample, service, args, loops, extra=(), awaits_kind="gather"):
    check_text_dump(dump_text(pysample, args), service, loops, extra)
    check_json_dump(dump_json(pysample, args), service, loops, extra, awaits_kind)


# --- record: await chains ---------------------------------------------------------------------------------------


class Chains:
    """Checks recorded stacks against the service's await graph, and counts their samples by the task they end
    in and the thread root they are under (None without --threads)."""

    def __init__(self, service, eager=False):
        self.service = service
        self.eager = eager
        self.torn = TornLines(exact=False)
        self.unexpected = []  # (task, frames, samples) of stacks torn under a returned frame
        self.total = 0
        self.parse = collections.Counter()  # (root, task) -> samples in parse()
        self.tasks = collections.Counter()  # (root, task) -> samples

    def add(self, frames, count, roots=False):
        service, path = self.service, self.service.path
        root = frames[0][0] if roots else None
        if roots:
            check(root.startswith("thread "), "stack without a thread root: %r" % (frames,))
        self.total += count
        marks = [index for index, frame in enumerate(frames) if task_marker(frame)]
        in_parse = any(frame[:2] == ("parse", path) for frame in frames)
        if not marks:
            check(not in_parse, "parse() sampled outside any task marker: %r" % (frames,))
            return
        segments = []
        for number, start in enumerate(marks):
            end = marks[number + 1] if number + 1 < len(marks) else len(frames)
            name, awaited_by = task_marker(frames[start])
            check(awaited_by == (2 if name == "shared" else 1), "%s marked as awaited by %d: %r" %
                  (name, awaited_by, frames))
            segments.append((name, frames[start + 1:end]))
        # Between the markers, the awaiting tasks' coroutine frames alone; after the last one, the running task's
        # frames, which may call the loop's methods (call_soon, create_task: the eager start of a task does) but
        # never run the loop.
        for frame in frames[marks[0]:marks[-1]]:
            check(task_marker(frame) or (short(frame[0]) not in PLUMBING and not
                                         (service.in_asyncio(frame) and os.path.basename(frame[1]) in LOOP_FILES)),
                  "loop plumbing %r between the task markers: %r" % (frame, frames))
        for frame in frames[marks[-1]:]:
            check(task_marker(frame) or short(frame[0]) not in PLUMBING,
                  "the loop's own running %r after the last task marker: %r" % (frame, frames))
        leaf, own = segments[-1]
        if not (self.eager and leaf == "eager-burst"):
            # Below the first marker, the thread's own frames up to the loop: no task's coroutine.
            coroutines = {"parse", "fetcher", "main", "second_main", "second_worker", "idle_sleep", "idle_event",
                          "idle_queue", "spawner", "burst_work", "shared_work", "await_shared"}
            check(not any(f[1] == path and f[0] in coroutines for f in frames[:marks[0]]),
                  "task frames before the first task marker: %r" % (frames,))
        self.tasks[(root, leaf)] += count
        for spec in (MAIN_LOOP, SECOND_LOOP):
            if leaf in spec["children"]:
                check([name for name, _ in segments] == [spec["parent"], leaf],
                      "%s under the markers %r" % (leaf, [name for name, _ in segments]))
                check(segments[0][1] == service.chains[spec["parent"]], "%s's frames %r between its marker and %s's, "
                      "Python says %r" % (spec["parent"], segments[0][1], leaf, service.chains[spec["parent"]]))
                self.worker(leaf, own, spec["worker"], spec["call"], count, root)
                return
        if leaf == "shared":
            waiter = segments[0][0]
            check(len(segments) == 2 and waiter in SHARED_TASKS[1:] and segments[0][1] == service.chains[waiter],
                  "shared under %r, expected under waiter-a or waiter-b at %r" % (segments, service.chains[waiter]))
            self.worker(leaf, own, "shared_work", M["sharedparse"], count, root)
        elif leaf in MAIN_LOOP["idle"]:
            check(len(segments) == 1 and own == service.chains[leaf], "waiting %s sampled as %r, Python says %r" %
                  (leaf, frames[marks[0]:], service.chains[leaf]))
        elif leaf == "eager-burst":
            check(self.eager, "an eager-burst task without --eager")
            check(all(name in EAGER_TASKS for name, _ in segments), "eager-burst under %r" % segments)
            self.worker(leaf, own, "burst_work", M["burstparse"], count, root)
        elif leaf in (MAIN_LOOP["parent"], SECOND_LOOP["parent"], "spawner"):
            function = {"main": "main", "second-main": "second_main", "spawner": "spawner"}[leaf]
            check(len(segments) == 1 and own and own[0][:2] == (function, path), "%s running as %r" % (leaf, frames))
        else:
            raise Failure("a marker of a task the service has not: %r" % (frames,))

    def worker(self, name, own, function, call, count, root):
        """A task looping on parse(): its frame, then parse() and what parse() awaits, or its frame alone."""
        path = self.service.path
        check(own and own[0][:2] == (function, path), "%s's frames %r" % (name, own))
        if len(own) == 1 or own[1][0] != "parse":
            if not (own[0][2] in LINES[function] and all(f[1] == path and f[0] in ("announce", "has_run")
                                                         for f in own[1:])):
                # A stack read while its thread moved on, without stopping it: a frame that had returned
                # (the coroutine yielded) under one the loop then called. Counted against an allowance.
                self.unexpected.append((name, own, count))
            return
        self.torn.chain(own[:1], [(function, path, call)], count, name)
        check(own[1][1] == path and own[1][2] in LINES["parse"], "%s: parse() at %r" % (name, own[1]))
        check(all(self.service.in_asyncio(f) for f in own[2:]), "%s: frames above parse() outside asyncio: %r" %
              (name, own))
        self.parse[(root, name)] += count

    def in_parse(self, names, root=None):
        return sum(self.parse[(root, name)] for name in names)

    def done(self):
        self.torn.check(sum(self.parse.values()))
        odd = sum(count for _, _, count in self.unexpected)
        allowed = max(2, 0.01 * max(self.total, sum(self.parse.values())))
        check(odd <= allowed, "%d samples of workers in frames no call leads to (at most %d allowed): %r" %
              (odd, allowed, self.unexpected[:5]))
        print("samples by task: %s" % ", ".join("%s%s: %d (%d in parse)" % (
            name, "" if root is None else " under %s" % root, count, self.parse[(root, name)])
            for (root, name), count in sorted(self.tasks.items(), key=lambda item: (str(item[0][0]), item[0][1]))))


def chains_of(stacks, service, eager=False, roots=False):
    chains = Chains(service, eager)
    for frames, count in stacks:
        chains.add(frames, count, roots)
    return chains


def parse_samples(stacks, service, names):
    """Samples of parse() under the markers of the tasks named, before the checks (for record_until)."""
    total = 0
    for frames, count in stacks:
        marks = [task_marker(f)[0] for f in frames if task_marker(f)]
        if marks and marks[-1] in names and any(f[:2] == ("parse", service.path) for f in frames):
            total += count
    return total


def check_workers_share(chains, names, root=None, least=0.05):
    """Each of the tasks that take turns has its share of parse()'s samples: none left out. (A third each, but a
    loaded machine runs the loop in bursts that may cover several turns of one.)"""
    total = chains.in_parse(names, root)
    for name in names:
        check(chains.parse[(root, name)] >= least * total, "%s has %d of the %d samples in parse()%s" %
              (name, chains.parse[(root, name)], total, "" if root is None else " under " + root))


def record_async(pysample, service, tmp, names, *extra, least=60):
    stacks, result = record_until(pysample, service.pid, tmp, "--async", "--rate", "200", *extra,
                                  enough=lambda stacks: parse_samples(stacks, service, names) >= least, duration=2)
    check(service.proc.poll() is None, "the service died while being recorded")
    found = parse_samples(stacks, service, names)
    check(found >= least, "only %d samples in parse() under %r" % (found, names))
    return stacks, result


# --- the tests ----------------------------------------------------------------------------------------------------


def test_dump(pysample, python, tmp):
    with Service(python) as service:
        check_dumps(pysample, service, ["--pid", str(service.pid)], [("MainThread", MAIN_LOOP)])
        check(service.proc.poll() is None, "the service died while being dumped")


def test_record(pysample, python, tmp):
    fetchers = MAIN_LOOP["children"]
    with Service(python) as service:
        stacks, _ = record_async(pysample, service, tmp, fetchers)
        # Without --async: the thread's stacks as ever, the loop's plumbing under the coroutines.
        plain, _ = record_until(pysample, service.pid, tmp, enough=lambda stacks: sum(
            c for frames, c in stacks if frames[-1][:2] == ("parse", service.path)) >= 20, duration=1)
    chains = chains_of(stacks, service)
    chains.done()
    check_workers_share(chains, fetchers)
    check(not any(task_marker(f) for frames, _ in plain for f in frames), "task markers without --async")
    in_parse = [frames for frames, _ in plain if frames[-1][:2] == ("parse", service.path)]
    check(in_parse, "no sample in parse() without --async")
    for frames in in_parse:
        names = [short(f[0]) for f in frames]
        check({"run_forever", "_run_once"} <= set(names) and names[-2] == "fetcher",
              "without --async, parse() is not under the loop's plumbing and its fetcher: %r" % (frames,))


def test_idle(pysample, python, tmp):
    idle = list(MAIN_LOOP["idle"])

    def least(stacks):
        chains = chains_of(stacks, service)
        return min(chains.tasks[(None, name)] for name in idle)

    with Service(python) as service:
        stacks, _ = record_until(pysample, service.pid, tmp, "--async", "--idle", enough=lambda s: least(s) >= 50,
                                 duration=1)
    chains = chains_of(stacks, service)
    chains.done()
    counts = [chains.tasks[(None, name)] for name in idle]
    check(min(counts) >= 50, "waiting tasks counted %r times" % dict(zip(idle, counts)))
    # Each counted once a sample: the same number of times, but for samples whose tasks could not be read.
    check(min(counts) >= 0.9 * max(counts), "waiting tasks counted %r times, not once each sample" %
          dict(zip(idle, counts)))


def test_top(pysample, python, tmp):
    with Service(python) as service:
        result = subprocess.run([pysample, "top", "--async", "--pid", str(service.pid), "--duration", "3", "--rows",
                                 "1000"], capture_output=True, text=True, timeout=120)
    print(result.stdout[-3000:], result.stderr)
    check(result.returncode == 0, "top --async exited with %d" % result.returncode)
    tables = split_tables(result.stdout)
    check(tables, "top --async printed no table")
    last = "\n".join(tables[-1])
    check("\x1b" not in result.stdout, "escape sequences in top's output to a pipe")
    check(re.search(r"<task fetcher-[123]>", last) and "<task main>" in last and re.search(r"\bparse\b", last),
          "top --async: no <task main>, <task fetcher-N> or parse rows in its last table")


def test_taskgroup(pysample, python, tmp):
    fetchers = MAIN_LOOP["children"]
    with Service(python, "--taskgroup") as service:
        chain = service.chains["main"]
        check(chain[0] == ("main", service.path, M["taskgroup"]) and all(service.in_asyncio(f) for f in chain[1:]),
              "the workload says main waits in %r" % chain)
        check_dumps(pysample, service, ["--pid", str(service.pid)], [("MainThread", MAIN_LOOP)],
                    awaits_kind="taskgroup")
        stacks, _ = record_async(pysample, service, tmp, fetchers, least=40)
    chains = chains_of(stacks, service)
    chains.done()
    check_workers_share(chains, fetchers)


def test_eager(pysample, python, tmp):
    fetchers = MAIN_LOOP["children"]
    with Service(python, "--eager") as service:
        check_dumps(pysample, service, ["--pid", str(service.pid)], [("MainThread", MAIN_LOOP)], extra=EAGER_TASKS)
        stacks, _ = record_until(
            pysample, service.pid, tmp, "--async", "--rate", "200", duration=2,
            enough=lambda s: parse_samples(s, service, fetchers) >= 40 and parse_samples(s, service, ["eager-burst"]) >= 5)
    chains = chains_of(stacks, service, eager=True)
    chains.done()
    check(chains.in_parse(fetchers) >= 40, "only %d samples of the fetchers in parse()" % chains.in_parse(fetchers))
    check_workers_share(chains, fetchers)
    # parse() runs in eager-burst before its first await, that is during its eager start.
    check(chains.in_parse(["eager-burst"]) >= 5, "only %d samples of eager-burst's eager start in parse()" %
          chains.in_parse(["eager-burst"]))


def test_two_loops(pysample, python, tmp):
    fetchers, workers = MAIN_LOOP["children"], SECOND_LOOP["children"]
    with Service(python, "--two-loops") as service:
        loops = [("MainThread", MAIN_LOOP), ("loop-2", SECOND_LOOP)]
        check_dumps(pysample, service, ["--pid", str(service.pid)], loops)
        stacks, _ = record_until(
            pysample, service.pid, tmp, "--async", "--threads", "--rate", "200", duration=2,
            enough=lambda s: parse_samples(s, service, fetchers) >= 30 and parse_samples(s, service, workers) >= 30)
    chains = chains_of(stacks, service, roots=True)
    chains.done()
    main_root = "thread %d" % service.info["threads"]["MainThread"]
    second_root = "thread %d" % service.info["threads"]["loop-2"]
    for (root, name), count in chains.tasks.items():
        own = main_root if name in fetchers or name in MAIN_LOOP["idle"] or name == "main" else second_root
        check(root == own, "%d samples of %s under %s, not %s" % (count, name, root, own))
    check(chains.in_parse(fetchers, main_root) >= 30 and chains.in_parse(workers, second_root) >= 30,
          "samples in parse(): %d of the fetchers, %d of the second loop's workers" %
          (chains.in_parse(fetchers, main_root), chains.in_parse(workers, second_root)))
    check_workers_share(chains, fetchers, main_root)
    check_workers_share(chains, workers, second_root)


def check_shared(section, service, what):
    """--shared: the task both waiters await, shown once (text: under one of them) and said to be awaited by 2."""
    shared = [task for task in section["tasks"] if task["name"] == "shared"]
    check(len(shared) == 1, "%s: %d tasks named shared" % (what, len(shared)))
    shared = shared[0]
    check(shared["awaited_by"] == 2, "%s: shared awaited by %d tasks, expected 2" % (what, shared["awaited_by"]))
    check_worker_frames(shared, {"worker": "shared_work", "call": M["sharedparse"]}, service, what)
    under = []
    for name in SHARED_TASKS[1:]:
        waiter = [task for task in section["tasks"] if task["name"] == name]
        check(len(waiter) == 1 and waiter[0]["state"] == "waiting" and waiter[0]["awaits"],
              "%s: %s is not one task waiting: %r" % (what, name, waiter))
        check(waiter[0]["frames"] == service.chains[name], "%s: %s's frames %r, Python says %r" %
              (what, name, waiter[0]["frames"], service.chains[name]))
        check(all(child is shared for child in waiter[0]["children"]), "%s: %s awaits %r" %
              (what, name, [child["name"] for child in waiter[0]["children"]]))
        under += [name] * len(waiter[0]["children"])
        if "json" in section:
            awaits = waiter[0]["awaits"]
            check(awaits["kind"] == "task" and len(awaits["tasks"]) == 1, "%s: %s awaits %r" % (what, name, awaits))
    # The text shows the task under one of the tasks awaiting it; JSON lists both as awaiting it.
    check(under == (list(SHARED_TASKS[1:]) if "json" in section else under[:1]) and len(under) >= 1,
          "%s: shared shown under %r" % (what, under))


def test_shared(pysample, python, tmp):
    """A task awaited by two tasks: `(awaited by 2 tasks)` in the dump, `<task shared (awaited by 2)>` in the
    stacks, under either waiter."""
    fetchers = MAIN_LOOP["children"]
    loops = [("MainThread", MAIN_LOOP)]
    with Service(python, "--shared") as service:
        args = ["--pid", str(service.pid)]
        text = dump_text(pysample, args)
        check_text_dump(text, service, loops, extra=SHARED_TASKS)
        check_shared(parse_sections(text)[0], service, "dump")
        document = dump_json(pysample, args)
        check_json_dump(document, service, loops, extra=SHARED_TASKS)
        check_shared(json_sections(document)[0], service, "JSON")
        stacks, _ = record_until(
            pysample, service.pid, tmp, "--async", "--rate", "200", duration=2,
            enough=lambda s: parse_samples(s, service, fetchers) >= 30 and parse_samples(s, service, ["shared"]) >= 10)
    chains = chains_of(stacks, service)
    chains.done()
    check(chains.in_parse(["shared"]) >= 10, "only %d samples of shared in parse()" % chains.in_parse(["shared"]))
    check_workers_share(chains, fetchers)


def test_uvloop(pysample, python, tmp):
    command = interpreter_command(python, WORKLOAD)[0][:-1]
    found = subprocess.run(command + ["-c", "import uvloop"], capture_output=True, text=True, timeout=60)
    if found.returncode != 0:
        raise Skip("this interpreter has no uvloop (Debian: python3-uvloop, for /usr/bin/python3): %s" %
                   (found.stderr.strip().splitlines() or ["?"])[-1])
    fetchers = MAIN_LOOP["children"]
    with Service(python, "--uvloop") as service:
        check(service.info["loops"]["MainThread"].startswith("uvloop."), "not a uvloop loop: %r" % service.info)
        check_dumps(pysample, service, ["--pid", str(service.pid)], [("MainThread", MAIN_LOOP)])
        stacks, _ = record_async(pysample, service, tmp, fetchers, least=40)
    chains = chains_of(stacks, service)
    chains.done()
    check_workers_share(chains, fetchers)


def test_core(pysample, python, tmp):
    if shutil.which("gcore") is None:
        raise Skip("gcore (Debian's gdb) is not installed")
    root = python.split("::", 1)[0] if "::" in python else None
    prefix = os.path.join(tmp, "service")
    with Service(python) as service:
        made = subprocess.run(["gcore", "-o", prefix, str(service.pid)], capture_output=True, text=True, timeout=120)
        path = "%s.%d" % (prefix, service.pid)
        check(made.returncode == 0 and os.path.exists(path), "gcore failed: %s" % made.stderr[-2000:])
    args = ["--core", path] + (["--root", root] if root else [])
    check_dumps(pysample, service, args, [("MainThread", MAIN_LOOP)])


def check_no_loop(pysample, pid, what):
    result = run_pysample(pysample, ["dump", "--async", "--pid", str(pid)])
    print(result.stdout)
    check(result.returncode == 0, "%s: dump --async exited with %d" % (what, result.returncode))
    check(thread_names(result.stdout)[0], "%s: no thread dump" % what)
    said = [line for line in result.stdout.splitlines() if NO_LOOP in line]
    check(len(said) == 1, "%s: %d lines saying %r" % (what, len(said), NO_LOOP))
    check(not parse_sections(result.stdout), "%s: event loop sections printed" % what)
    document = dump_json(pysample, ["--pid", str(pid)])
    info = document.get("asyncio")
    # Loops that no thread runs may still be listed, with their tasks, but under no thread.
    check(isinstance(info, dict) and all(loop.get("thread_id") is None for loop in info.get("loops", [])) and
          (info.get("available") or info.get("reason")), "%s: asyncio in the JSON document: %r" % (what, info))


def test_no_loop(pysample, python, tmp):
    with Workload(python, "sleeper.py", 600) as sleeper:
        check_no_loop(pysample, sleeper.pid, "a process without asyncio")
    with Service(python, "--no-loop") as service:
        check_no_loop(pysample, service.pid, "a loop that ended, another never run")
        stacks, result = record(pysample, service.pid, tmp, "--async", "--idle", duration=1)
    check(stacks, "record --async --idle of a process whose loops do not run: no samples")
    check(not any(task_marker(f) for frames, _ in stacks for f in frames),
          "task markers in a process whose loops do not run: %r" % stacks)
    check(all(frames[-1][:2] == ("<module>", service.path) and frames[-1][2] == M["noloop"] for frames, _ in stacks),
          "record --async of a process whose loops do not run: %r" % stacks)


def test_old(pysample, python, tmp):
    version = python_version(python)
    workload = "coroutines.py" if version >= (3, 6) else "sleeper.py"
    with Workload(python, workload, 600) as target:
        result = run_pysample(pysample, ["dump", "--async", "--pid", str(target.pid)])
        print(result.stdout)
        check(result.returncode == 0, "dump --async exited with %d" % result.returncode)
        check(thread_names(result.stdout)[0] and "Traceback" in result.stdout, "no thread dump")
        said = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if TOO_OLD in line]
        check(len(said) == 1, "%d lines saying %r" % (len(said), TOO_OLD))
        check(not parse_sections(result.stdout), "event loop sections printed")
        document = dump_json(pysample, ["--pid", str(target.pid)])
        info = document.get("asyncio")
        check(isinstance(info, dict) and info.get("available") is False and "3.8" in info.get("reason", ""),
              "asyncio in the JSON document: %r" % info)
        check(document.get("threads"), "no threads in the JSON document")
        out = os.path.join(tmp, "old.txt")
        result = run_pysample(pysample, ["record", "--async", "--pid", str(target.pid), "-d", "1", "-f", "collapsed",
                                         "-o", out])
    check(result.returncode >= 0, "record --async died of signal %d" % -result.returncode)
    if result.returncode == 0:
        stacks = parse_collapsed(out)
        check(not any(task_marker(f) for frames, _ in stacks for f in frames), "task markers before 3.8")
    else:
        check(len(result.stderr.strip().splitlines()) == 1 and "3.8" in result.stderr,
              "record --async refused without one line saying why: %r" % result.stderr)


# --- the parsers on hand-written output ----------------------------------------------------------------------------


SAMPLE_DUMP = """\
Process 100: python async_service.py 60
Python 3.12.1 (libpython3.12.so.1.0)

Thread 100 "MainThread" (active):
Traceback (most recent call last):
  File "/w/async_service.py", line 216, in <module>

Event loop in thread 100 "MainThread" (_UnixSelectorEventLoop): 7 tasks
\u251c\u2500\u2500 (T) main [waiting] awaits gather of 3 tasks
\u2502   \u2502 main (/w/async_service.py:{gather})
\u2502   \u251c\u2500\u2500 (T) fetcher-1 [running]
\u2502   \u2502     fetcher (/w/async_service.py:{fetchparse})
\u2502   \u2502     parse (/w/async_service.py:{parseloop})
\u2502   \u251c\u2500\u2500 (T) fetcher-2 [scheduled]
\u2502   \u2502     fetcher (/w/async_service.py:{fetchparse})
\u2502   \u2502     parse (/w/async_service.py:{parseyield})
\u2502   \u2502     sleep (/a/asyncio/tasks.py:665)
\u2502   \u2502     __sleep0 (/a/asyncio/tasks.py:640)
\u2502   \u2514\u2500\u2500 (T) fetcher-3 [scheduled]
\u2502         fetcher (/w/async_service.py:{fetchparse})
\u2502         parse (/w/async_service.py:{parseyield})
\u2502         sleep (/a/asyncio/tasks.py:665)
\u251c\u2500\u2500 (T) sleeper [waiting] awaits Future
\u2502     idle_sleep (/w/async_service.py:{sleeper})
\u2502     sleep (/a/asyncio/tasks.py:665)
\u251c\u2500\u2500 (T) event-waiter [waiting] awaits Future
\u2502     idle_event (/w/async_service.py:{eventwait})
\u2502     Event.wait (/a/asyncio/locks.py:212)
\u2514\u2500\u2500 (T) queue-reader [waiting] awaits Future
      idle_queue (/w/async_service.py:{queueget})
      Queue.get (/a/asyncio/queues.py:158)
""".format(**M)


class FakeService:
    path = "/w/async_service.py"
    asyncio_dir = "/a/asyncio"
    info = {"loops": {"MainThread": "asyncio.unix_events._UnixSelectorEventLoop"}, "threads": {"MainThread": 100}}
    chains = {"main": [("main", path, M["gather"])],
              "sleeper": [("idle_sleep", path, M["sleeper"]), ("sleep", "/a/asyncio/tasks.py", 665)],
              "event-waiter": [("idle_event", path, M["eventwait"]), ("Event.wait", "/a/asyncio/locks.py", 212)],
              "queue-reader": [("idle_queue", path, M["queueget"]), ("Queue.get", "/a/asyncio/queues.py", 158)]}
    in_asyncio = Service.in_asyncio


def expect_failure(function, *args):
    try:
        function(*args)
    except Failure as failure:
        return str(failure)
    raise Failure("%s(...) accepted wrong output" % function.__name__)


def test_selftest(pysample, python, tmp):
    service = FakeService()
    loops = [("MainThread", MAIN_LOOP)]
    check_text_dump(SAMPLE_DUMP, service, loops)
    sections = parse_sections(SAMPLE_DUMP)
    check([len(s["tasks"]) for s in sections] == [7], "sections %r" % sections)
    fetcher = sections[0]["tasks"][1]
    check(fetcher["frames"] == [("fetcher", service.path, M["fetchparse"]), ("parse", service.path, M["parseloop"])],
          "frames parsed as %r" % fetcher["frames"])
    both = TASK_LINE.match("\u2502   \u2514\u2500\u2500 (T) a b [waiting] awaits gather(x, y) (z) (awaited by 3 tasks)")
    check(both and both.groups()[2:] == ("a b", "waiting", "gather(x, y) (z)", "3"), "task line parsed as %r" %
          (both and both.groups(),))
    # Each mistake a product could make is caught.
    wrong = {
        "a connector": SAMPLE_DUMP.replace("\u2514\u2500\u2500 (T) queue", "\u251c\u2500\u2500 (T) queue"),
        "a prefix": SAMPLE_DUMP.replace("\u2502   \u251c\u2500\u2500 (T) fetcher-2", "    \u251c\u2500\u2500 (T) fetcher-2"),
        "a frame prefix": SAMPLE_DUMP.replace("\u2502   \u2502 main", "\u2502     main"),
        "a child's line": SAMPLE_DUMP.replace("awaits gather of 3 tasks\n", "awaits gather of 3 tasks\nwhat\n"),
        "the count": SAMPLE_DUMP.replace("7 tasks", "8 tasks"),
        "a state": SAMPLE_DUMP.replace("fetcher-2 [scheduled]", "fetcher-2 [running]"),
        "an idle frame": SAMPLE_DUMP.replace("Queue.get (/a/asyncio/queues.py:158)", "get (/a/asyncio/queues.py:158)"),
        "the waiting line": SAMPLE_DUMP.replace("parse (/w/async_service.py:%d)\n\u2502   \u2502     sleep" %
                                                M["parseyield"], "parse (/w/async_service.py:%d)\n\u2502   \u2502     "
                                                "sleep" % M["parseloop"]),
        "the thread name": SAMPLE_DUMP.replace('100 "MainThread" (_Unix', '100 "python" (_Unix'),
    }
    for what, text in wrong.items():
        print("wrong %s: %s" % (what, expect_failure(check_text_dump, text, service, loops)))

    # The JSON document of the same dump, and what its consistency checks catch.
    tasks = []
    for address, node in enumerate(sections[0]["tasks"], 1):
        node["address"] = address * 16
    for node in sections[0]["tasks"]:
        awaits = None
        if node["awaits"]:
            children = [child["address"] for child in node["children"]]
            awaits = {"kind": "gather" if children else "future", "type": "_GatheringFuture" if children else "Future",
                      "tasks": children}
        tasks.append({"address": node["address"], "name": node["name"], "state": node["state"], "awaits": awaits,
                      "frames": [{"function": f, "filename": p, "line": n} for f, p, n in node["frames"]],
                      "awaited_by": [p["address"] for p in sections[0]["tasks"] if node in p["children"]]})
    document = {"threads": [{"id": 100, "name": "MainThread"}],
                "asyncio": {"available": True, "tasks_unreadable": 0, "loops": [{
                    "thread_id": 100, "thread_name": "MainThread", "loop_type": "_UnixSelectorEventLoop",
                    "loop_address": 4096, "running_task": 32, "tasks": tasks}]}}
    check_json_dump(document, service, loops)
    print("the JSON document:", json.dumps(document)[:300], "...")
    broken = json.loads(json.dumps(document))
    broken["asyncio"]["loops"][0]["tasks"][1]["awaited_by"] = []
    print("wrong awaited_by: %s" % expect_failure(check_json_dump, broken, service, loops))
    broken = json.loads(json.dumps(document))
    broken["asyncio"]["loops"][0]["running_task"] = 48
    print("wrong running_task: %s" % expect_failure(check_json_dump, broken, service, loops))
    broken["asyncio"]["loops"][0]["tasks"][2]["state"] = "running"
    print("two running: %s" % expect_failure(check_json_dump, broken, service, loops))
    print("a taskgroup expected: %s" % expect_failure(check_json_dump, document, service, loops, (), "taskgroup"))

    # Collapsed stacks.
    path, tasks_py = service.path, "/a/asyncio/tasks.py"
    head = "<module> (%s:200);run (/a/asyncio/runners.py:194);BaseEventLoop.run_forever (/a/asyncio/base_events.py:" \
           "607)" % path
    main = "<task main>;main (%s:%d)" % (path, M["gather"])
    good = [
        "%s;%s;<task fetcher-1>;fetcher (%s:%d);parse (%s:%d) 30" % (head, main, path, M["fetchparse"], path,
                                                                     M["parseloop"]),
        "%s;%s;<task fetcher-2>;fetcher (%s:%d);parse (%s:%d);sleep (%s:665) 25" % (
            head, main, path, M["fetchparse"], path, M["parseyield"], tasks_py),
        "%s;%s;<task fetcher-3>;fetcher (%s:%d);parse (%s:%d) 28" % (head, main, path, M["fetchparse"], path,
                                                                     M["parseloop"]),
        "%s;BaseEventLoop._run_once (/a/asyncio/base_events.py:1900) 5" % head,
        "%s;<task sleeper>;idle_sleep (%s:%d);sleep (%s:665) 9" % (head, path, M["sleeper"], tasks_py),
    ]
    profile = os.path.join(tmp, "good.txt")
    with open(profile, "w") as out:
        out.write("\n".join(good) + "\n")
    chains = chains_of(parse_collapsed(profile), service)
    chains.done()
    check(chains.in_parse(MAIN_LOOP["children"]) == 83 and chains.tasks[(None, "sleeper")] == 9,
          "counted %r" % chains.parse)
    check_workers_share(chains, MAIN_LOOP["children"])
    bad = {
        "plumbing between the markers": good[0].replace(main, "<task main>;Handle._run (/a/asyncio/events.py:84);"
                                                              "main (%s:%d)" % (path, M["gather"])),
        "the loop run by the running task": good[0].replace(";parse (", ";BaseEventLoop._run_once "
                                                            "(/a/asyncio/base_events.py:1900);parse ("),
        "a missing parent": good[0].replace(main + ";", ""),
        "main's line": good[0].replace("main (%s:%d)" % (path, M["gather"]), "main (%s:%d)" % (path, M["rename"])),
        "parse outside a task": "%s;fetcher (%s:%d);parse (%s:%d) 3" % (head, path, M["fetchparse"], path,
                                                                      M["parseloop"]),
        "an unknown task": good[0].replace("fetcher-1", "fetcher-9"),
        "a sleeper's leaf": good[4].replace("sleep (%s:665)" % tasks_py, "sleep (/elsewhere/tasks.py:665)"),
    }
    for what, line in bad.items():
        with open(profile, "w") as out:
            out.write(line + "\n")
        print("wrong %s: %s" % (what, expect_failure(chains_of, parse_collapsed(profile), service)))


# --- running them ----------------------------------------------------------------------------------------------------


# name -> (function, the earliest version it applies to)
TESTS = collections.OrderedDict([
    ("dump", (test_dump, (3, 8))), ("record", (test_record, (3, 8))), ("idle", (test_idle, (3, 8))),
    ("top", (test_top, (3, 8))), ("taskgroup", (test_taskgroup, (3, 11))), ("eager", (test_eager, (3, 12))),
    ("two_loops", (test_two_loops, (3, 8))), ("shared", (test_shared, (3, 8))), ("uvloop", (test_uvloop, (3, 8))), ("core", (test_core, (3, 8))),
    ("no_loop", (test_no_loop, (3, 8))), ("old", (test_old, None)), ("selftest", (test_selftest, None)),
])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pysample", required=True)
    parser.add_argument("--python")
    parser.add_argument("tests", nargs="*", metavar="TEST", help="one of: %s" % ", ".join(TESTS))
    args = parser.parse_args()
    for name in args.tests:
        if name not in TESTS:
            parser.error("no test %r: one of %s" % (name, ", ".join(TESTS)))
    pysample = os.path.abspath(args.pysample)
    if args.tests == ["selftest"]:
        version = None
    else:
        check(args.python, "--python is needed")
        version = python_version(args.python)
    if args.tests:
        chosen = args.tests
    elif version < (3, 8):
        chosen = ["old"]
    else:
        chosen = [name for name in TESTS if name not in ("old", "selftest")]
    outcomes = collections.OrderedDict()
    with tempfile.TemporaryDirectory(prefix="pysample-async-") as tmp:
        for name in chosen:
            function, since = TESTS[name]
            started = time.time()
            what = "async %s (%s)" % (name, args.python)
            try:
                if name == "old":
                    if version >= (3, 8):
                        raise Skip("Python %d.%d reads asyncio tasks: this is for 2.7 to 3.7" % version)
                elif since is not None and version < since:
                    raise Skip("needs Python %d.%d or later" % since)
                function(pysample, args.python, tmp)
            except Skip as skip:
                print("skipped %s: %s" % (what, skip))
                outcomes[name] = "skipped"
                continue
            except Failure as failure:
                print("FAILED %s: %s" % (what, failure))
                outcomes[name] = "FAILED"
                continue
            print("passed %s in %.1fs" % (what, time.time() - started))
            outcomes[name] = "passed"
    print("async tests (%s): %s" % (args.python, ", ".join("%s %s" % item for item in outcomes.items())))
    if "FAILED" in outcomes.values():
        return 1
    if "passed" not in outcomes.values():
        return SKIP_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
