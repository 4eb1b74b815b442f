# Runs functions whose code objects carry hostile names and file names: markup, quotes,
# backslashes, control characters, NUL, lone surrogates, non-BMP characters, invalid UTF-8
# (Python 2) and a name of a million characters. Each name starts with a tag "hNN_" that the test
# looks for in every output. Prints one JSON line describing the names, then "ready", then burns CPU
# in each function in turn for `seconds` (argv[1]).
import json
import sys
import time
import types

PY2 = sys.version_info[0] == 2


def burn(n, inner):  # @burn
    total = 0
    for i in range(n):  # @loop
        total += i * i
    if inner is not None:
        total += inner(n, None)
    return total


def text(escaped):
    """A str from a \\-escaped ASCII literal: bytes on Python 2, code points on Python 3."""
    if PY2:
        return escaped.decode("string_escape")
    return escaped.encode("ascii").decode("unicode_escape")


# (tag, function name, file name), as \-escaped literals so this file stays ASCII on every version.
COMMON = [
    ("h01", r"h01_</script><script>alert(1)</script>", r"/tmp/<script>alert('f')</script>.py"),
    ("h02", r"h02_<g onload=alert(2) onmouseover=\"alert(3)\">", r"/tmp/h02 \" onload=\"alert(4).py"),
    ("h03", r"h03_q'uo\"te\\back\\\\slash", r"C:\\dir\\h03 'single' \"double\".py"),
    ("h04", r"h04_ctl\x01\x1b[31mred\x1b[0m\nnewline\ttab\rcr", r"/tmp/h04\nsplit\x07bell.py"),
    ("h05", r"h05_nul\x00byte", r"/tmp/h05\x00nul.py"),
    ("h06", r"h06_semi;colon]]>&amp;&lt; 42", r"/tmp/h06;semi:1 (x).py"),
]

PY3_ONLY = [
    ("h07", r"h07_lone\udcffsurrogate\ud800high", r"/tmp/h07\udcff.py"),
    ("h08", r"h08_emoji\U0001F525fire\U0001F600", r"/tmp/h08\U0001F4A9.py"),
    ("h09", r"h09_wide\U0001F525and\udc80lone", r"/tmp/h09.py"),
    ("h10", r"h10_seps\x85nel\u2028ls\u2029ps\x0bvt\x0cff\x1cfs\ufffenon\uffffchar", r"/tmp/h10\u2028.py"),
]

PY2_ONLY = [
    ("h07", r"h07_bad\xff\xfeutf8\xc3", r"/tmp/h07\xff.py"),
    ("h08", r"h08_emoji\xf0\x9f\x94\xa5fire", r"/tmp/h08\xed\xb3\xbfcesu.py"),
]

HUGE_TAG = "h99"


def hostile_names():
    names = [(tag, text(name), text(filename)) for tag, name, filename in COMMON]
    names += [(tag, text(name), text(filename)) for tag, name, filename in (PY2_ONLY if PY2 else PY3_ONLY)]
    names.append((HUGE_TAG, HUGE_TAG + "_" + "L" * 1000000, "/tmp/" + "F" * 1000000 + ".py"))
    return names


def described(text_value):
    """[hex of the UTF-8 (Python 3, surrogates kept) or raw (Python 2) bytes of the first 5000
    characters, length in characters (Python 3) or bytes (Python 2)]."""
    prefix = text_value[:5000]
    raw = prefix if PY2 else prefix.encode("utf-8", "surrogatepass")
    return [raw.encode("hex") if PY2 else raw.hex(), len(text_value)]


def renamed(code, name, filename):
    if hasattr(code, "replace"):  # 3.8+
        fields = {"co_name": name, "co_filename": filename}
        if hasattr(code, "co_qualname"):
            fields["co_qualname"] = name
        return code.replace(**fields)
    args = [code.co_argcount]
    if not PY2:
        args.append(code.co_kwonlyargcount)
    args += [code.co_nlocals, code.co_stacksize, code.co_flags, code.co_code, code.co_consts, code.co_names,
             code.co_varnames, filename, name, code.co_firstlineno, code.co_lnotab, code.co_freevars,
             code.co_cellvars]
    return types.CodeType(*args)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30
    names = hostile_names()
    functions = [types.FunctionType(renamed(burn.__code__, name, filename), globals()) for _, name, filename in names]
    description = [[tag] + described(name) + described(filename) for tag, name, filename in names]
    sys.stdout.write(json.dumps({"python": list(sys.version_info[:2]), "names": description}) + "\n")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    deadline = time.time() + seconds
    while time.time() < deadline:
        for index, function in enumerate(functions):
            # Each also calls the next one, so hostile frames sit under hostile frames.
            function(20000, functions[(index + 1) % len(functions)])


main()
