# Two threads blocked in system calls: the main thread in time.sleep, another in select.select.
import select
import sys
import threading
import time


def wait_in_select():
    select.select([], [], [], 60)  # @select


def sleep_in_main():
    time.sleep(60)  # @sleep


thread = threading.Thread(target=wait_in_select)
thread.daemon = True
thread.start()
sys.stdout.write("ready\n")
sys.stdout.flush()
sleep_in_main()  # @callsleep
