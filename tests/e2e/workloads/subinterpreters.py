# The main thread computes in the main interpreter while a second thread runs code in a
# sub-interpreter that the main thread created: 3.8 to 3.12's _xxsubinterpreters, 3.13's
# _interpreters, 3.14's concurrent.interpreters. The sub-interpreter prints 'ready TID', with the
# kernel id of the thread that runs it, once it runs. Before 3.12 the interpreters share one GIL
# that a busy sub-interpreter never hands back to the main one: the main thread sleeps instead.
# Arguments: seconds.
import os
import sys
import threading
import time

SUB_CODE = """
import os, threading, time
os.write(1, ("ready %%d\\n" %% threading.get_native_id()).encode())
def sub_busy(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass
sub_busy(%r)
"""


def make_runner():
    try:
        from concurrent import interpreters  # 3.14 and later
        interp = interpreters.create()
        return lambda code: interp.exec(code)
    except ImportError:
        pass
    try:
        import _interpreters as low  # 3.13
    except ImportError:
        import _xxsubinterpreters as low  # 3.8 to 3.12
    ident = low.create()
    run = getattr(low, "exec", None) or low.run_string
    return lambda code: run(ident, code)


def run_in_sub(runner, seconds):
    runner(SUB_CODE % seconds)


def main_busy(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass


def main_wait(seconds):
    time.sleep(seconds)


seconds = float(sys.argv[1])
runner = make_runner()  # created by the main thread, run by another one
thread = threading.Thread(target=run_in_sub, args=(runner, seconds), name="sub-runner")
thread.start()
(main_busy if sys.version_info >= (3, 12) else main_wait)(seconds)
thread.join()
os._exit(0)  # sub-interpreters left running would only be warned about
