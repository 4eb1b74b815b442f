"""Prints, as JSON, what this interpreter's dis module says of every instruction of a source file's
functions: {"NAME:FIRSTLINE": {"OFFSET": [OPNAME, LINE]}}, offsets after any EXTENDED_ARG.
Valid Python 2.7 and 3."""
import dis
import json
import opcode
import sys


def codes(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            for inner in codes(const):
                yield inner


def line_of(starts, offset):
    line = None
    for start, number in starts:
        if start > offset:
            break
        line = number
    return line


def instructions(code):
    if hasattr(dis, "get_instructions"):
        for i in dis.get_instructions(code):
            if i.opname not in ("EXTENDED_ARG", "CACHE"):
                yield i.offset, i.opname, getattr(i.positions, "lineno", None) if hasattr(i, "positions") else None
        return
    co, i = code.co_code, 0
    while i < len(co):
        op = ord(co[i])
        start = i
        i += 3 if op >= opcode.HAVE_ARGUMENT else 1
        if op != opcode.EXTENDED_ARG:
            yield start, opcode.opname[op], None


source = open(sys.argv[1]).read()
module = compile(source, sys.argv[1], "exec")
out = {}
for code in codes(module):
    starts = sorted(dis.findlinestarts(code))
    entry = {}
    for offset, name, line in instructions(code):
        entry[str(offset)] = [name, line if line is not None else line_of(starts, offset)]
    out["%s:%d" % (code.co_name, code.co_firstlineno)] = entry
sys.stdout.write(json.dumps(out))
