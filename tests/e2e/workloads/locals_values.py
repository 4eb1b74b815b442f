# A function whose local variables hold one value of each kind `dump --locals` shows, sleeping while
# it is dumped. Before 'ready' it prints, as JSON, what the interpreter itself says of each value.
import json
import sys
import time


class Custom(object):
    pass


def describe(value):
    """What pysample should show for a value: repr() for the simple kinds, a summary for others."""
    kind = type(value).__name__
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return "<%s, len %d>" % (kind, len(value)), kind
    if kind in ("int", "long") and value.bit_length() > 240:
        sign = ", negative" if value < 0 else ""
        return "<%s, %d bits%s>" % (kind, value.bit_length(), sign), kind
    if kind in ("str", "unicode", "bytes") and len(value) > 64:
        # Python 2's str is a byte string.
        unit = "bytes" if kind == "bytes" or (kind == "str" and sys.version_info[0] == 2) else "chars"
        return "%s... (%d %s)" % (repr(value[:64]), len(value), unit), kind
    if kind in ("Custom", "function"):
        return "<%s object at 0x%x>" % (kind, id(value)), kind
    return repr(value), kind


def target(seconds, captured_arg):
    an_int = 42
    a_negative = -7
    a_zero = 0
    a_medium = 2 ** 62 + 12345
    a_big = -(2 ** 100) - 1
    a_huge = 3 ** 700
    a_float = 3.25
    a_fraction = 0.1
    a_large_float = 1e22
    a_tiny_float = 1.5e-07
    a_negative_zero = -0.0
    a_true = True
    a_false = False
    nothing = None
    text = "hello"
    quoted = "it's \"quoted\"\n\t\\"
    apostrophe = "it's"
    long_text = "x" * 200
    unicode_text = u"caf\u00e9 \u20ac"
    raw = b"\x00ab'\xff"
    long_raw = b"\x01" * 100
    items = [1, 2, 3]
    pair = (1, "two")
    mapping = {"a": 1, "b": 2}
    members = set([1, 2, 3, 4])
    frozen = frozenset([1])
    obj = Custom()
    captured = "cell value"

    def nested():
        return captured + captured_arg

    expected = dict((name, describe(value)) for name, value in locals().items()
                    if name not in ("expected", "seconds"))
    expected["seconds"] = describe(seconds)
    expected["later"] = ("<unbound>", None)
    sys.stdout.write(json.dumps(expected) + "\n")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    time.sleep(seconds)  # @sleep
    later = nested()
    return later


target(float(sys.argv[1]), "-arg")  # @calltarget
