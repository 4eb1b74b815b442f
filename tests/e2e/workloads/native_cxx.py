# Python -> a C++ extension (namespaces, templates) -> a Python callback, for --native.
import sys

sys.path.insert(0, sys.argv[1])
import cxxwork  # noqa: E402


def callback():
    total = 0
    for i in range(200):  # @callback
        total += i
    return total


def drive():
    while True:
        cxxwork.run(callback, 1000, 20000)  # @run


sys.stdout.write("ready\n")
sys.stdout.flush()
drive()  # @calldrive
