# Computes in one program, then execs the same interpreter into another one (exec_target.py),
# keeping its pid. Arguments: seconds before the exec, seconds after it.
import os
import sys
import time


def before_exec(seconds):
    end = time.time() + seconds
    total = 0
    while time.time() < end:
        total += 1
    return total


sys.stdout.write("ready\n")
sys.stdout.flush()
before_exec(float(sys.argv[1]))
target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_target.py")
os.execv(sys.executable, [sys.executable, target, sys.argv[2]])
