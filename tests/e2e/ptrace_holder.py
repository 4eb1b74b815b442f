#!/usr/bin/env python3
"""Holds a process under ptrace, as a debugger attached to it would, until its standard input closes.

    ptrace_holder.py PID NAME

Takes NAME as its command name (what a message naming the tracer shows), seizes PID's main
thread with PTRACE_SEIZE (which does not stop it), prints 'held', and waits.
"""
import ctypes
import sys

PTRACE_SEIZE = 0x4206

pid, name = int(sys.argv[1]), sys.argv[2]
with open("/proc/self/comm", "w") as comm:
    comm.write(name)
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(ctypes.c_long(PTRACE_SEIZE), ctypes.c_long(pid), None, None) != 0:
    sys.stdout.write("PTRACE_SEIZE failed: errno %d\n" % ctypes.get_errno())
    sys.exit(1)
sys.stdout.write("held\n")
sys.stdout.flush()
sys.stdin.read()
