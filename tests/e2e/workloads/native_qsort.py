# Python -> libc qsort (through ctypes) -> a Python comparison callback, in a loop, for --native.
import ctypes
import ctypes.util
import sys

libc = ctypes.CDLL(ctypes.util.find_library("c"))
COMPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))


def py_compare(a, b):
    x = a[0]
    y = b[0]
    total = 0
    for i in range(40):  # @compare
        total += i
    return (x > y) - (x < y)


compare = COMPARE(py_compare)


def sort_with_qsort(values):
    array = (ctypes.c_int * len(values))(*values)
    libc.qsort(array, len(array), ctypes.sizeof(ctypes.c_int), compare)  # @qsort
    return array


def main():
    values = [(i * 7919) % 1000 for i in range(1000)]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        sort_with_qsort(values)  # @callsort


main()  # @callmain
