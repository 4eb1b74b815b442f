"""Benchmark workload: very many distinct stacks, for a profiler's memory use over a long run.

    python many_stacks.py [FUNCTIONS]

Generates FUNCTIONS (default 300) functions once at start, each with three call sites to other
functions chosen at random and a random amount of padding, so that the call sites fall on
different lines; then forever walks random chains of them, 1 to 7 calls deep, each ending in a
short loop of arithmetic. Tens of thousands of different stacks come up within minutes. Runs
until killed.
"""
import random
import sys

SOURCE_NAME = "<many_stacks generated>"


def generate(count, seed=1):
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        lines.append("def f%d(depth, seed):" % i)
        for _ in range(rng.randrange(4)):
            lines.append("    seed = (seed * %d + %d) & 0x7fffffff" % (rng.randrange(3, 1000), rng.randrange(1000)))
        lines.append("    if depth <= 0:")
        lines.append("        return work(seed)")
        lines.append("    seed = (seed * 1103515245 + 12345) & 0x7fffffff")
        lines.append("    choice = (seed >> 16) % 3")
        targets = [rng.randrange(count) for _ in range(3)]
        lines.append("    if choice == 0:")
        lines.append("        return f%d(depth - 1, seed)" % targets[0])
        lines.append("    if choice == 1:")
        for _ in range(rng.randrange(3)):
            lines.append("        seed ^= %d" % rng.randrange(1 << 16))
        lines.append("        return f%d(depth - 1, seed)" % targets[1])
        lines.append("    return f%d(depth - 1, seed)" % targets[2])
        lines.append("")
    return "\n".join(lines) + "\n"


def work(seed):
    total = 0
    for i in range(40 + seed % 160):
        total += i * i % 11
    return total


def main(count):
    namespace = {"work": work}
    exec(compile(generate(count), SOURCE_NAME, "exec"), namespace)
    functions = [namespace["f%d" % i] for i in range(count)]
    seed = 12345
    while True:
        seed = (seed * 1103515245 + 12345) & 0x7fffffff
        functions[seed % count](1 + (seed >> 8) % 7, seed)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
