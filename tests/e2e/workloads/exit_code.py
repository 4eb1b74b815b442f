# Burns CPU for a moment, then exits with the status given on the command line.
import sys
import time


def burn(seconds):
    end = time.time() + seconds  # @burnfirst
    count = 0
    while time.time() < end:
        count += 1  # @burn
    return count  # @burnlast


burn(float(sys.argv[1]))  # @callburn
sys.exit(int(sys.argv[2]))
