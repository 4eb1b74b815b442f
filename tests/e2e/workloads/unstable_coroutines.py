# The coroutine part of unstable_stacks.py (3.5+ syntax): coroutines awaiting coroutines and an
# awaitable that suspends them, resumed round-robin with send() and recreated. Line markers are
# read by the tests.
import time


class Switch(object):
    def __await__(self):
        yield  # @switch


async def inner(n):
    total = 0
    for i in range(n):
        total += i  # @innerloop
    return total


async def outer(n):
    while True:
        await inner(n)  # @awaitinner
        await Switch()  # @awaitswitch


def coroutines(end):
    while time.time() < end:
        running = []  # no list comprehension: a frame of its own up to 3.11
        for i in range(4):
            running.append(outer(10 + i))
        for _ in range(50):
            for coroutine in running:
                coroutine.send(None)  # @resume
        for coroutine in running:
            coroutine.close()  # @close
