#!/usr/bin/env python3
"""Opens a pstats file with Python's own pstats module and reads the matching text table the way a
cProfile user would, checking that both say what the workload did.

    check_pstats.py PSTATS_FILE TEXT_FILE --slowest FUNC --main FUNC
                    [--caller CALLER:CALLEE ...] [--sort tottime|cumtime|ncalls|name]

Standard library only; exits 1 with a message on the first failed check.
"""
import argparse
import io
import pstats
import re
import subprocess
import sys

SORT_WORDS = {
    "tottime": "internal time",
    "cumtime": "cumulative time",
    "ncalls": "sample count",
    "name": "function name",
}
SUMMARY = re.compile(r"^ +(\d+) samples in (\d+\.\d{3}) seconds( \(.*\))?$")
REDUCED = re.compile(r"^   List reduced from (\d+) to (\d+) due to restriction <(\d+)>$")
NOTE = ("   samples: how many samples saw the function (a sampler sees no calls); own% and total%: its share of them, "
        "running itself and anywhere on the stack")
TITLE = "  samples  tottime     own%  cumtime   total% filename:lineno(function)"
PSTATS_TITLE = "   ncalls  tottime  percall  cumtime  percall filename:lineno(function)"
# Ours: samples, tottime, own%, cumtime, total%, label.
ROW = re.compile(r"^ *(\d+) +(\d+\.\d{3}) +(\d+\.\d\d)% +(\d+\.\d{3}) +(\d+\.\d\d)% (.*)$")
# pstats' own, for a file without call counts: ncalls 0 and both percall columns blank.
PSTATS_ROW = re.compile(r"^ +0 +(\d+\.\d{3}) {10,}(\d+\.\d{3}) {10}(.*)$")
LABEL = re.compile(r"^(.*):(\d+)\((.*)\)$")


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def report(message):
    print("ok: " + message)


def matches(name, wanted):
    """A recorded name (possibly a qualname such as Class.method) is the function asked for."""
    return name == wanted or name.endswith("." + wanted)


def keys_named(stats, wanted):
    return [key for key in stats.stats if matches(key[2], wanted)]


def check_stats(path, slowest, main, callers):
    stats = pstats.Stats(path, stream=io.StringIO())
    check(stats.stats, "%s holds no functions" % path)
    total = stats.total_tt
    report("pstats.Stats loaded %d functions, %.3f s in total" % (len(stats.stats), total))
    claimed = [key for key, value in stats.stats.items()
               if value[0] or value[1] or any(edge[0] or edge[1] for edge in value[4].values())]
    check(not claimed, "call counts in a sampled profile: %s" % [pstats.func_std_string(key) for key in claimed[:5]])
    report("no call counts claimed (ncalls 0, percall blank)")

    by_tottime = max(stats.stats.items(), key=lambda item: item[1][2])
    check(matches(by_tottime[0][2], slowest),
          "the largest tottime is %s (%.3f s), not %s" % (pstats.func_std_string(by_tottime[0]), by_tottime[1][2], slowest))
    report("%s has the largest tottime (%.3f s)" % (slowest, by_tottime[1][2]))

    main_keys = keys_named(stats, main)
    check(main_keys, "no function named %s" % main)
    cumtime = max(stats.stats[key][3] for key in main_keys)
    check(total > 0 and abs(cumtime - total) <= 0.1 * total,
          "cumtime of %s is %.3f s, not within 10%% of the total %.3f s" % (main, cumtime, total))
    report("cumtime of %s is %.3f s of %.3f s in total" % (main, cumtime, total))

    for caller, callee in callers:
        callee_keys = keys_named(stats, callee)
        check(callee_keys, "no function named %s" % callee)
        names = sorted({key[2] for callee_key in callee_keys for key in stats.stats[callee_key][4]})
        check(any(matches(name, caller) for name in names),
              "%s is not among the callers of %s: %s" % (caller, callee, names))
        report("%s is called by %s" % (callee, caller))


def printed_rows(path):
    """(tottime, cumtime, label) of the rows pstats itself prints for the file."""
    stream = io.StringIO()
    pstats.Stats(path, stream=stream).print_stats()
    rows = [PSTATS_ROW.match(line) for line in stream.getvalue().splitlines()]
    return {row.groups() for row in rows if row}


def check_browser(path):
    """The interactive `python -m pstats` browser, driven through its standard input."""
    result = subprocess.run([sys.executable, "-m", "pstats", path], input="sort tottime\nstats 3\nquit\n",
                            capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, "python -m pstats exited %d: %s" % (result.returncode, result.stderr))
    check(PSTATS_TITLE.strip() in result.stdout, "python -m pstats printed no table:\n" + result.stdout)
    report("python -m pstats browses the file")


def parse_text(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    check(lines and SUMMARY.match(lines[0]), "%s: first line is not the summary: %r" % (path, lines[:1]))
    check(len(lines) > 2 and lines[1] == NOTE and lines[2] == "",
          "%s: no note saying what the columns count after the summary: %r" % (path, lines[1:3]))
    check(lines[3].startswith("   Ordered by: "), "%s: no 'Ordered by' line: %r" % (path, lines[3]))
    ordered_by = lines[3][len("   Ordered by: "):]
    index = 4
    if index < len(lines) and REDUCED.match(lines[index]):
        index += 1
    check(lines[index:index + 2] == ["", TITLE], "%s: no column header after 'Ordered by'" % path)
    rows = []
    for line in lines[index + 2:]:
        if not line:
            break
        match = ROW.match(line)
        check(match, "%s: not a table row: %r" % (path, line))
        rows.append(match)
    check(rows, "%s: the table has no rows" % path)
    return lines[0], ordered_by, rows


def function_name(label):
    match = LABEL.match(label)
    return match.group(3) if match else label


def sort_value(row, sort):
    if sort == "tottime":
        return -float(row.group(2))
    if sort == "cumtime":
        return -float(row.group(4))
    if sort == "ncalls":
        return -int(row.group(1))
    return function_name(row.group(6))


def check_text(path, sort, pstats_path):
    summary, ordered_by, rows = parse_text(path)
    report("%s: %s" % (path, summary.strip()))
    check(ordered_by == SORT_WORDS[sort], "%s: ordered by %r, expected %r" % (path, ordered_by, SORT_WORDS[sort]))
    values = [sort_value(row, sort) for row in rows]
    check(values == sorted(values), "%s: the %d rows are not sorted by %s" % (path, len(rows), sort))
    report("%d rows ordered by %s" % (len(rows), ordered_by))

    samples = int(SUMMARY.match(summary).group(1))
    for row in rows:
        count, own, total = int(row.group(1)), float(row.group(3)), float(row.group(5))
        check(abs(total - 100.0 * count / samples) <= 0.006, "%s: total%% %.2f for %d of %d samples" %
              (row.group(6), total, count, samples))
        check(own <= total, "%s: own%% %.2f above total%% %.2f" % (row.group(6), own, total))
    report("the shares are the sample counts over the %d samples" % samples)

    ours = {(row.group(2), row.group(4), row.group(6)) for row in rows}
    theirs = printed_rows(pstats_path)
    check(ours <= theirs, "%s: times or names pstats does not print for the same file:\n%s" %
          (path, "\n".join(str(row) for row in sorted(ours - theirs))))
    report("every row's times and name are the ones pstats prints for the same file")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pstats_file")
    parser.add_argument("text_file")
    parser.add_argument("--slowest", required=True, help="function expected to have the largest tottime")
    parser.add_argument("--main", required=True, help="function expected to span (nearly) the whole run")
    parser.add_argument("--caller", action="append", default=[], metavar="CALLER:CALLEE")
    parser.add_argument("--sort", choices=sorted(SORT_WORDS), default="tottime")
    args = parser.parse_args()
    args.caller = [tuple(pair.split(":", 1)) for pair in args.caller]
    for pair in args.caller:
        if len(pair) != 2:
            parser.error("--caller takes CALLER:CALLEE")
    return args


def main():
    args = parse_arguments()
    try:
        check_stats(args.pstats_file, args.slowest, args.main, args.caller)
        check_browser(args.pstats_file)
        check_text(args.text_file, args.sort, args.pstats_file)
    except CheckFailed as failure:
        print("FAILED: %s" % failure)
        return 1
    print("all pstats and text checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
