// Kernel tables: an op looks up its kernel by device and dtype. The CPU and CUDA kernel files
// fill the tables when the module loads; an empty slot raises a clear NotImplementedError.
#pragma once
#include "lepton/core/device.h"
#include "lepton/core/dtype.h"
#include "lepton/core/error.h"

namespace lepton {

template <class Fn>
class KernelTable {
 public:
  explicit constexpr KernelTable(const char* op) : op_(op) {}
  void set(DeviceType device, DType dtype, Fn fn) { fns_[int(device)][int(dtype)] = fn; }
  // `op` names the user-facing op in the error (defaults to the table's family name).
  Fn get(DeviceType device, DType dtype, const char* op = nullptr) const {
    Fn fn = fns_[int(device)][int(dtype)];
    if (!fn)
      raise(ErrorKind::NotImplemented, op ? op : op_, " has no ", device == DeviceType::CPU ? "cpu" : "cuda", "/",
            dtype_name(dtype), " kernel");
    return fn;
  }
  bool has(DeviceType device, DType dtype) const { return fns_[int(device)][int(dtype)] != nullptr; }

 private:
  const char* op_;
  Fn fns_[kNumDeviceTypes][kNumDTypes] = {};
};

}  // namespace lepton
