"""A small asyncio service for trying `pysample record --async`: a server task accepts requests
from a queue and handles each in a task of its own, which queries a "database" (a sleep), renders a
page (CPU) and, for some, fetches two upstream resources at once with asyncio.gather.

    python3 scripts/demo_async.py [SECONDS]
"""
import asyncio
import random
import sys
import time


def render(rows):
    page = []
    for row in range(rows):
        page.append("<tr>%s</tr>" % "".join("<td>%d</td>" % (row * col) for col in range(20)))
    return "".join(page)


async def query_database(request):
    await asyncio.sleep(0.002 + random.random() * 0.004)
    return 200 + request % 50


async def fetch_upstream(name):
    await asyncio.sleep(0.003)
    return name


async def handle(request):
    rows = await query_database(request)
    if request % 3 == 0:
        await asyncio.gather(fetch_upstream("prices"), fetch_upstream("stock"))
    return render(rows)


async def serve(queue):
    handlers = set()
    while True:
        request = await queue.get()
        handler = asyncio.create_task(handle(request), name="request-%d" % request)
        handlers.add(handler)
        handler.add_done_callback(handlers.discard)


async def clients(queue, seconds):
    end = time.time() + seconds
    request = 0
    while time.time() < end:
        request += 1
        queue.put_nowait(request)
        await asyncio.sleep(0.001)


async def main(seconds):
    asyncio.current_task().set_name("main")
    queue = asyncio.Queue()
    server = asyncio.create_task(serve(queue), name="server")
    print("ready", flush=True)
    await clients(queue, seconds)
    server.cancel()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))
