// lepton._C._dist: the NCCL library loader and communicator (csrc/lepton/dist/).
#include "convert.h"
#include "lepton/core/error.h"
#include "lepton/dist/nccl_comm.h"

namespace lepton::py_bind {

namespace {

using dist::NcclComm;
using dist::NcclWork;

dist::NcclOp to_op(const std::string& op) {
  if (op == "sum") return dist::kSum;
  if (op == "avg") return dist::kAvg;
  if (op == "max") return dist::kMax;
  if (op == "min") return dist::kMin;
  raise(ErrorKind::Value, "nccl: unknown reduce op '", op, "' (sum, avg, max, min)");
}

}  // namespace

void bind_dist(py::module_& m) {
  py::module_ d = m.def_submodule("_dist", "NCCL communicators (libnccl is loaded at run time with dlopen)");
  d.def("nccl_load", [](const std::vector<std::string>& candidates) {
    const dist::NcclLib& lib = dist::load_nccl(candidates);
    return py::make_tuple(lib.path, lib.version);
  }, py::arg("candidates"), "Load libnccl from the first path that opens (then the system's); (path, version)");
  d.def("nccl_unique_id", [] {
    dist::ncclUniqueId id;
    dist::check_nccl(dist::nccl().GetUniqueId(&id), "ncclGetUniqueId");
    return py::bytes(id.internal, dist::kNcclUniqueIdBytes);
  });
  d.attr("UNIQUE_ID_BYTES") = dist::kNcclUniqueIdBytes;

  py::class_<NcclWork, std::shared_ptr<NcclWork>>(d, "NcclWork")
      .def("is_completed", &NcclWork::is_completed)
      .def("wait", &NcclWork::wait, "order the current stream after the collective (no host sync)")
      .def("synchronize", &NcclWork::synchronize, py::call_guard<py::gil_scoped_release>());

  py::class_<NcclComm, std::shared_ptr<NcclComm>>(d, "NcclComm")
      .def(py::init([](const py::bytes& id, int rank, int size, int device, double timeout_s) {
        std::string raw = id;
        LEPTON_CHECK(raw.size() == dist::kNcclUniqueIdBytes, Value, "nccl: a unique id has ", dist::kNcclUniqueIdBytes,
                     " bytes, got ", raw.size());
        dist::ncclUniqueId uid;
        std::copy(raw.begin(), raw.end(), uid.internal);
        py::gil_scoped_release release;  // ncclCommInitRank waits for every rank
        return NcclComm::create(uid, rank, size, device, timeout_s);
      }), py::arg("unique_id"), py::arg("rank"), py::arg("size"), py::arg("device"), py::arg("timeout"))
      .def("all_reduce", [](NcclComm& c, const Tensor& t, const std::string& op) { return c.all_reduce(t, to_op(op)); })
      .def("broadcast", &NcclComm::broadcast)
      .def("all_gather", &NcclComm::all_gather)
      .def("reduce_scatter", [](NcclComm& c, const Tensor& out, const Tensor& in, const std::string& op) {
        return c.reduce_scatter(out, in, to_op(op));
      })
      .def("abort", &NcclComm::abort)
      .def("destroy", &NcclComm::destroy, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("error", &NcclComm::error)
      .def_property_readonly("rank", &NcclComm::rank)
      .def_property_readonly("size", &NcclComm::size)
      .def_property_readonly("device", &NcclComm::device);
}

}  // namespace lepton::py_bind
