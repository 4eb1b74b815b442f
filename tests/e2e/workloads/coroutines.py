# Hot code inside a coroutine awaited by another coroutine run by asyncio (3.6+); markers are read by the tests.
import asyncio
import sys
import time


async def crunch(n):
    total = 0
    for i in range(n): total += i * i  # @coroloop
    return total


async def driver(seconds):
    end = time.time() + seconds
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while time.time() < end:
        await crunch(3000)  # @awaitcrunch
        await asyncio.sleep(0)  # @yieldtoloop


if hasattr(asyncio, "run"):
    asyncio.run(driver(float(sys.argv[1])))  # @callrun
else:  # 3.6
    asyncio.get_event_loop().run_until_complete(driver(float(sys.argv[1])))  # @callrun36
