# A function compiled from source with an empty file name, and (3.8+) renamed to look like a
# location: "evil (/etc/passwd:1)".
import sys

SOURCE = "def evil():\n    total = 0\n    for i in range(10000):\n        total += i * i\n    return total\n"
namespace = {}
exec(compile(SOURCE, "", "exec"), namespace)
evil = namespace["evil"]
code = evil.__code__
if hasattr(code, "replace"):
    if hasattr(code, "co_qualname"):
        code = code.replace(co_name="evil (/etc/passwd:1)", co_qualname="evil (/etc/passwd:1)")
    else:
        code = code.replace(co_name="evil (/etc/passwd:1)")
    evil.__code__ = code
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    evil()  # @call
