/* A program that embeds CPython (so its executable is not called python*): runs a script file with
 * the given arguments as sys.argv. Usage: embed SCRIPT [ARGS...]. Built by tests/e2e/run_e2e.py with
 * pythonX.Y-config --cflags --embed --ldflags. */
#include <Python.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    Py_Initialize();
    PyObject *args = PyList_New(0);
    for (int i = 1; i < argc; i++) {
        PyObject *arg = PyUnicode_DecodeFSDefault(argv[i]);
        PyList_Append(args, arg);
        Py_DECREF(arg);
    }
    PySys_SetObject("argv", args);
    Py_DECREF(args);
    FILE *script = fopen(argv[1], "r");
    if (script == NULL) {
        perror(argv[1]);
        return 2;
    }
    int failed = PyRun_SimpleFileEx(script, argv[1], 1);
    if (Py_FinalizeEx() < 0)
        failed = 1;
    return failed ? 1 : 0;
}
