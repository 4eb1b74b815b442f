# A multiprocessing pool whose workers run a known CPU-bound function, for --subprocesses.
import multiprocessing
import sys


def worker_task(n):
    total = 0
    for i in range(n):  # @task
        total += i * i
    return total


def main():
    pool = multiprocessing.Pool(2)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        pool.map(worker_task, [200000] * 8)  # @map


if __name__ == "__main__":
    main()
