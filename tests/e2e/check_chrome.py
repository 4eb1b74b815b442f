#!/usr/bin/env python3
"""Reads a pysample Chrome trace (Trace Event Format, JSON object form) the way a trace viewer
would and checks that it is well formed and says what the workload did.

    check_chrome.py TRACE.json NAME [NAME...]

Checks: the top-level layout, each event's keys and types, one process_name and one thread_name per
thread, non-negative durations, slices of each thread nesting properly (a child inside its parent,
never straddling its end) and listed parents first, and every NAME as the name of some slice (a
NAME also matches a qualified name ending in ".NAME"). Standard library only; exits 1 with a message
on the first failed check.
"""
import collections
import json
import sys


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def report(message):
    print("ok: " + message)


def matches(name, wanted):
    return name == wanted or name.endswith("." + wanted)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def describe(index, event):
    return "event %d %s" % (index, json.dumps(event)[:200])


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise CheckFailed("cannot read %s as JSON: %s" % (path, error))


def check_layout(trace):
    check(isinstance(trace, dict), "the top level is not an object with traceEvents")
    check(isinstance(trace.get("traceEvents"), list), "traceEvents is missing or not a list")
    unit = trace.get("displayTimeUnit", "ms")
    check(unit in ("ms", "ns"), "displayTimeUnit is %r, viewers accept ms or ns" % unit)
    other = trace.get("otherData", {})
    check(isinstance(other, dict), "otherData is not an object")
    report("%d events, displayTimeUnit %s, otherData keys: %s"
           % (len(trace["traceEvents"]), unit, ", ".join(sorted(other)) or "none"))
    if other.get("timeline_complete") is False:
        print("note: the trace says its timeline is incomplete: %s" % other.get("note", "(no note)"))


def check_metadata_event(index, event):
    check(event.get("name") in ("process_name", "thread_name"),
          "%s: metadata name %r, expected process_name or thread_name" % (describe(index, event), event.get("name")))
    check(is_int(event.get("pid")), "%s: pid missing or not an integer" % describe(index, event))
    args = event.get("args")
    check(isinstance(args, dict) and isinstance(args.get("name"), str) and args["name"] != "",
          "%s: args.name missing or empty" % describe(index, event))
    if event["name"] == "thread_name":
        check(is_int(event.get("tid")), "%s: thread_name without an integer tid" % describe(index, event))


def check_slice_event(index, event):
    for key in ("name", "cat"):
        check(isinstance(event.get(key), str), "%s: %s missing or not a string" % (describe(index, event), key))
    check(event["name"] != "", "%s: empty name" % describe(index, event))
    for key in ("pid", "tid"):
        check(is_int(event.get(key)), "%s: %s missing or not an integer" % (describe(index, event), key))
    for key in ("ts", "dur"):
        check(is_number(event.get(key)), "%s: %s missing or not a number" % (describe(index, event), key))
        check(event[key] >= 0, "%s: negative %s" % (describe(index, event), key))
    args = event.get("args", {})
    check(isinstance(args, dict), "%s: args is not an object" % describe(index, event))
    if "file" in args:
        check(isinstance(args["file"], str), "%s: args.file is not a string" % describe(index, event))
    if "line" in args:
        check(is_int(args["line"]) and args["line"] > 0, "%s: args.line is not a positive integer"
              % describe(index, event))


def check_events(events):
    """Returns the slices grouped by (pid, tid) in file order, and the metadata names."""
    slices = collections.defaultdict(list)
    processes = {}
    threads = {}
    for index, event in enumerate(events):
        check(isinstance(event, dict), "event %d is not an object" % index)
        phase = event.get("ph")
        check(phase in ("X", "M"), "%s: ph %r, expected X or M" % (describe(index, event), phase))
        if phase == "M":
            check_metadata_event(index, event)
            if event["name"] == "process_name":
                check(event["pid"] not in processes, "%s: second process_name for pid %d"
                      % (describe(index, event), event["pid"]))
                processes[event["pid"]] = event["args"]["name"]
            else:
                key = (event["pid"], event["tid"])
                check(key not in threads, "%s: second thread_name for tid %d" % (describe(index, event), key[1]))
                threads[key] = event["args"]["name"]
        else:
            check_slice_event(index, event)
            slices[(event["pid"], event["tid"])].append(event)
    report("every event has its keys with the right types, ph X or M, no negative ts or dur")
    return slices, processes, threads


def check_metadata(slices, processes, threads):
    check(len(processes) == 1, "expected one process_name event, found %d" % len(processes))
    pid, name = next(iter(processes.items()))
    report("process_name for pid %d: %r" % (pid, name))
    for key in slices:
        check(key[0] == pid, "slices for pid %d, but the process is %d" % (key[0], pid))
        check(key in threads, "thread %d has slices but no thread_name event" % key[1])
    for (thread_pid, tid), thread in sorted(threads.items()):
        check(thread_pid == pid, "thread_name for tid %d names pid %d, the process is %d" % (tid, thread_pid, pid))
        report("thread_name for tid %d: %r, %d slices" % (tid, thread, len(slices.get((thread_pid, tid), []))))


def check_thread_nesting(tid, events):
    """Slices of one thread, in file order: sorted by start, parents before children, and each one
    inside every slice still open when it starts. Returns the deepest nesting."""
    open_ends = []
    deepest = 0
    previous = None
    for event in events:
        start, end = event["ts"], event["ts"] + event["dur"]
        if previous is not None:
            check(start >= previous["ts"], "thread %d: %r at %s is listed after %r at %s; slices must be in time order"
                  % (tid, event["name"], start, previous["name"], previous["ts"]))
        while open_ends and open_ends[-1][0] <= start:
            open_ends.pop()
        if open_ends:
            parent_end, parent = open_ends[-1]
            check(end <= parent_end,
                  "thread %d: %r [%s, %s] straddles the end of %r [%s, %s]; slices must nest, each listed "
                  "after the slices that enclose it" % (tid, event["name"], start, end, parent["name"], parent["ts"],
                                                         parent_end))
        open_ends.append((end, event))
        deepest = max(deepest, len(open_ends))
        previous = event
    return deepest


def check_nesting(slices):
    for (_, tid), events in sorted(slices.items()):
        deepest = check_thread_nesting(tid, events)
        first = min(e["ts"] for e in events)
        last = max(e["ts"] + e["dur"] for e in events)
        report("thread %d: %d slices nest properly, %d deep, from %.3f s to %.3f s"
               % (tid, len(events), deepest, first / 1e6, last / 1e6))


def check_names(slices, names):
    all_slices = [event for events in slices.values() for event in events]
    for wanted in names:
        found = [event for event in all_slices if matches(event["name"], wanted)]
        check(found, "no slice is named %r; slice names: %s"
              % (wanted, ", ".join(sorted({event["name"] for event in all_slices}))))
        threads = sorted({event["tid"] for event in found})
        seconds = sum(event["dur"] for event in found) / 1e6
        report("%r: %d slices on thread(s) %s, %.3f s in all" % (wanted, len(found), threads, seconds))


def main(argv):
    if len(argv) < 3:
        print("usage: check_chrome.py TRACE.json NAME [NAME...]", file=sys.stderr)
        return 2
    path, names = argv[1], argv[2:]
    try:
        trace = load(path)
        check_layout(trace)
        slices, processes, threads = check_events(trace["traceEvents"])
        check(slices, "the trace has no slices (X events)")
        check_metadata(slices, processes, threads)
        check_nesting(slices)
        check_names(slices, names)
    except CheckFailed as failure:
        print("FAIL %s: %s" % (path, failure), file=sys.stderr)
        return 1
    print("PASS %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
