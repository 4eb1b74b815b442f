// A C++ extension module for the native-stack tests: Python calls into namespaced, templated C++
// that spends time in C++ and calls back into Python.
#include <Python.h>

namespace pysample_test {
namespace detail {

template <typename T>
struct Accumulator {
    // Burns CPU in C++ so that samples land here, not only in the callback.
    __attribute__((noinline)) static T spin(long rounds) {
        volatile T total = 0;
        for (long i = 0; i < rounds; ++i) total = total + static_cast<T>(i % 7);
        return total;
    }

    __attribute__((noinline)) static PyObject* fold(PyObject* callback, long calls, long rounds) {
        T total = 0;
        for (long i = 0; i < calls; ++i) {
            total = total + spin(rounds);
            PyObject* result = PyObject_CallObject(callback, nullptr);
            if (result == nullptr) return nullptr;
            Py_DECREF(result);
        }
        return PyLong_FromLong(static_cast<long>(total));
    }
};

}  // namespace detail
}  // namespace pysample_test

static PyObject* run(PyObject*, PyObject* args) {
    PyObject* callback = nullptr;
    long calls = 0;
    long rounds = 0;
    if (!PyArg_ParseTuple(args, "Oll", &callback, &calls, &rounds)) return nullptr;
    return pysample_test::detail::Accumulator<long>::fold(callback, calls, rounds);
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "run(callback, calls, rounds): C++ work calling back into Python"},
    {nullptr, nullptr, 0, nullptr},
};

#if PY_MAJOR_VERSION >= 3
static PyModuleDef module = {PyModuleDef_HEAD_INIT, "cxxwork", nullptr, -1, methods,
                             nullptr, nullptr, nullptr, nullptr};
PyMODINIT_FUNC PyInit_cxxwork() { return PyModule_Create(&module); }
#else
PyMODINIT_FUNC initcxxwork() { Py_InitModule("cxxwork", methods); }
#endif
