# An asyncio service with named tasks and a known await graph, for `--async` (Python 3.8+). The
# markers are read by the tests.
#
#   async_service.py SECONDS [--taskgroup] [--eager] [--two-loops] [--uvloop] [--no-loop]
#
# The task asyncio.run makes renames itself "main" and gathers "fetcher-1".."fetcher-3" (with
# --taskgroup, 3.11+: creates them in an asyncio.TaskGroup), each awaiting parse() in a loop:
# pure-Python CPU for a few ms, then asyncio.sleep(0), so that they take turns. Beside them, and
# awaited by nobody, "sleeper" waits in asyncio.sleep(3600), "event-waiter" in Event.wait() and
# "queue-reader" in Queue.get(), for ever.
#   --eager (3.12+): the loop's task factory is asyncio.eager_task_factory, and "spawner" awaits one
#       eager task "eager-burst" after another, each running parse() before its first await.
#   --two-loops: a thread "loop-2" runs an event loop of its own, where "second-main" gathers
#       "second-worker-1" and "second-worker-2", which loop on parse() as the fetchers do.
#   --shared: "shared" loops on parse() too, and two tasks await it: "waiter-a" and "waiter-b".
#   --uvloop: the loops are uvloop's.
#   --no-loop: no loop runs: one ran to its end, another has a task but is never run; the main
#       thread sleeps.
#
# It says "ready" once every task exists and has run, each waiting task being then at its await.
# Just before, it prints one line `info JSON`: {"loops": {thread name: the loop's type},
# "threads": {thread name: native id}, "asyncio": the directory of asyncio's sources,
# "chains": {task name: its coroutine frames as Python itself sees them, outermost first, as
# [function (qualified from 3.11), file, line]}} for the tasks that wait (main, sleeper,
# event-waiter, queue-reader, second-main, waiter-a, waiter-b).
import asyncio
import json
import os
import sys
import threading
import time

WORK = 15000  # iterations of parse()'s loop: a few milliseconds

SECONDS = float(sys.argv[1])
FLAGS = set(sys.argv[2:])
DEADLINE = time.time() + SECONDS

EXPECTED = {"main", "fetcher-1", "fetcher-2", "fetcher-3", "sleeper", "event-waiter", "queue-reader"}
if "--eager" in FLAGS:
    EXPECTED.add("spawner")
if "--two-loops" in FLAGS:
    EXPECTED |= {"second-main", "second-worker-1", "second-worker-2"}
if "--shared" in FLAGS:
    EXPECTED |= {"shared", "waiter-a", "waiter-b"}

for flag, needs in (("--taskgroup", (3, 11)), ("--eager", (3, 12))):
    if flag in FLAGS and sys.version_info < needs:
        sys.exit("async_service.py: %s needs Python %d.%d or later" % ((flag,) + needs))

lock = threading.Lock()
started = set()  # the names of the tasks that have run
waiting = {}  # name -> the tasks whose frames the info line gives
info = {"loops": {}, "threads": {}, "asyncio": os.path.dirname(asyncio.sleep.__code__.co_filename), "chains": {}}
announced = []


def has_run(name):
    with lock:
        started.add(name)


def loop_type(loop):
    return "%s.%s" % (type(loop).__module__, type(loop).__qualname__)


def frames_of(task):
    """A task's coroutine frames, outermost first, following what each awaits."""
    frames = []
    awaitable = task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        frames.append([getattr(code, "co_qualname", code.co_name), code.co_filename, frame.f_lineno])
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def announce():
    """Says ready, once, when every task has run (called from the main loop's fetchers)."""
    if announced:
        return
    with lock:
        if not EXPECTED <= started:
            return
    announced.append(True)
    info["chains"] = {name: frames_of(task) for name, task in waiting.items()}
    sys.stdout.write("info %s\n" % json.dumps(info))
    sys.stdout.write("ready\n")
    sys.stdout.flush()


async def parse(n):
    total = 0
    for i in range(n):
        total += i * i  # @parseloop
    await asyncio.sleep(0)  # @parseyield
    return total


async def fetcher(name):
    while time.time() < DEADLINE:
        await parse(WORK)  # @fetchparse
        if name not in started:
            has_run(name)
        announce()


async def idle_sleep():
    has_run("sleeper")
    await asyncio.sleep(3600)  # @sleeper


async def idle_event(event):
    has_run("event-waiter")
    await event.wait()  # @eventwait


async def idle_queue(queue):
    has_run("queue-reader")
    await queue.get()  # @queueget


async def shared_work():
    while time.time() < DEADLINE:
        await parse(WORK)  # @sharedparse
        if "shared" not in started:
            has_run("shared")


async def await_shared(name, task):
    has_run(name)
    await task  # @awaitshared


async def burst_work():
    await parse(WORK)  # @burstparse


async def spawner():
    loop = asyncio.get_running_loop()
    while time.time() < DEADLINE:
        # Named from the start: loop.create_task names a factory's task only after its eager start (3.12).
        burst = asyncio.Task(burst_work(), loop=loop, name="eager-burst", eager_start=True)  # @spawn
        await burst  # @awaitburst
        if "spawner" not in started:
            has_run("spawner")


async def main():
    asyncio.current_task().set_name("main")  # @rename
    loop = asyncio.get_running_loop()
    info["loops"]["MainThread"] = loop_type(loop)
    waiting["main"] = asyncio.current_task()
    has_run("main")
    if "--eager" in FLAGS:
        loop.set_task_factory(asyncio.eager_task_factory)
    event, queue = asyncio.Event(), asyncio.Queue()
    idle = [asyncio.create_task(idle_sleep(), name="sleeper"),
            asyncio.create_task(idle_event(event), name="event-waiter"),
            asyncio.create_task(idle_queue(queue), name="queue-reader")]
    for task in idle:
        waiting[task.get_name()] = task
    if "--eager" in FLAGS:
        idle.append(asyncio.create_task(spawner(), name="spawner"))
    if "--shared" in FLAGS:
        shared = asyncio.create_task(shared_work(), name="shared")
        for name in ("waiter-a", "waiter-b"):
            waiting[name] = asyncio.create_task(await_shared(name, shared), name=name)
            idle.append(waiting[name])
        idle.append(shared)
    names = ["fetcher-%d" % number for number in (1, 2, 3)]
    if "--taskgroup" in FLAGS:
        async with asyncio.TaskGroup() as group:  # @taskgroup
            for name in names:
                group.create_task(fetcher(name), name=name)
    else:
        fetchers = [asyncio.create_task(fetcher(name), name=name) for name in names]
        await asyncio.gather(*fetchers)  # @gather
    for task in idle:
        task.cancel()
    await asyncio.gather(*idle, return_exceptions=True)


async def second_worker(name):
    while time.time() < DEADLINE:
        await parse(WORK)  # @secondparse
        if name not in started:
            has_run(name)


async def second_main():
    asyncio.current_task().set_name("second-main")
    info["loops"]["loop-2"] = loop_type(asyncio.get_running_loop())
    waiting["second-main"] = asyncio.current_task()
    has_run("second-main")
    workers = [asyncio.create_task(second_worker(name), name=name) for name in ("second-worker-1", "second-worker-2")]
    await asyncio.gather(*workers)  # @secondgather


def run(coroutine):
    if "--uvloop" not in FLAGS:
        return asyncio.run(coroutine)  # @run
    import uvloop
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def second_loop():
    info["threads"]["loop-2"] = threading.get_native_id()
    run(second_main())


async def finished():
    return None


if "--no-loop" in FLAGS:
    asyncio.run(finished())
    never_run = asyncio.new_event_loop()
    pending = never_run.create_task(asyncio.sleep(3600), name="never-run")
    info["threads"]["MainThread"] = threading.get_native_id()
    sys.stdout.write("info %s\n" % json.dumps(info))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    time.sleep(SECONDS)  # @noloop
    sys.exit(0)

info["threads"]["MainThread"] = threading.get_native_id()
if "--two-loops" in FLAGS:
    threading.Thread(target=second_loop, name="loop-2", daemon=True).start()
run(main())
