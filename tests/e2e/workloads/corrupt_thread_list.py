# Makes the interpreter's list of threads unreadable from outside for a while: the only thread's
# "next" pointer is set to an address that is not mapped, then put back. Nothing in this process
# walks the list meanwhile (one thread, no container allocated in the loop, so no collection).
import ctypes
import sys
import time

UNMAPPED = 0xDEAD0000  # below every mapping of an x86-64 process

seconds = float(sys.argv[1])
get_state = ctypes.pythonapi.PyThreadState_Get
get_state.restype = ctypes.c_void_p
state = get_state()
# PyThreadState starts with "next" in Python 2, with "prev" then "next" since 3.0.
next_field = ctypes.c_void_p.from_address(state + (0 if sys.version_info[0] == 2 else ctypes.sizeof(ctypes.c_void_p)))
if next_field.value:
    sys.stdout.write("another thread is listed\n")
    sys.exit(1)
sys.stdout.write("ready\n")
sys.stdout.flush()
next_field.value = UNMAPPED
end = time.time() + seconds
total = 0
while time.time() < end:
    for i in range(1000):
        total += i * i  # @loop
next_field.value = None
sys.stdout.write("done\n")
