# An asyncio service of N tasks: 4 workers taking turns at CPU work (each step a short pure-Python
# loop, then a yield to the loop) under a main task that gathers every task, and N - 5 idle tasks
# waiting on an Event. The sampled stacks of a worker go through main's gather.
import asyncio
import sys


def burn(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


async def worker():
    while True:
        burn(5000)
        await asyncio.sleep(0)


async def idle(event):
    await event.wait()


async def main(count):
    asyncio.current_task().set_name("main")
    event = asyncio.Event()
    tasks = [asyncio.ensure_future(worker()) for _ in range(4)]
    tasks += [asyncio.ensure_future(idle(event)) for _ in range(max(0, count - 5))]
    for number, task in enumerate(tasks):
        task.set_name("task-%d" % number)
    print("ready", flush=True)
    await asyncio.gather(*tasks)


asyncio.run(main(int(sys.argv[1])))
