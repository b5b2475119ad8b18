// Bindings for the gather/scatter and sort families (lepton/_tensor_methods.py gives them torch's
// Tensor-method signatures). The GIL is released while the kernels run.
#include "convert.h"
#include "lepton/ops/scatter.h"
#include "lepton/ops/sort.h"

namespace lepton::py_bind {

void bind_sort(py::module_& m) {
  using nogil = py::call_guard<py::gil_scoped_release>;
  m.def("gather", &ops::gather, py::arg("input"), py::arg("dim"), py::arg("index"), nogil(),
        "out[i][j] = input[index[i][j]][j] (dim 0), index an int64 tensor with input's number of dims");
  m.def("scatter", &ops::scatter, py::arg("input"), py::arg("dim"), py::arg("index"), py::arg("src"), nogil(),
        "a copy of input with src written at index along dim");
  m.def("scatter_add", &ops::scatter_add, py::arg("input"), py::arg("dim"), py::arg("index"), py::arg("src"), nogil(),
        "a copy of input with src added at index along dim (duplicates accumulate)");
  m.def("sort", &ops::sort, py::arg("input"), py::arg("dim") = -1, py::arg("descending") = false, nogil(),
        "(values, indices) sorted along dim, stable; NaN above every number");
  m.def("topk", &ops::topk, py::arg("input"), py::arg("k"), py::arg("dim") = -1, py::arg("largest") = true, nogil(),
        "(values, indices) of the k largest (or smallest) along dim, sorted");
  m.def("cumsum", &ops::cumsum, py::arg("input"), py::arg("dim"), nogil(),
        "running sum along dim (integers and bool give int64)");
}

}  // namespace lepton::py_bind
