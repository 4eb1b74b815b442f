# Sorts with numpy in a loop: most of the time in its C sort routines, which Debian's build leaves
# without symbols.
import sys

import numpy

values = numpy.random.RandomState(1).random_sample(200000)
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    numpy.sort(values, kind="quicksort")  # @sort
