#include "lepton/core/device.h"

#include <cstdlib>

#include "lepton/core/error.h"

namespace lepton {

std::string Device::str() const { return is_cuda() ? "cuda:" + std::to_string(index) : "cpu"; }

Device Device::parse(const std::string& s) {
  if (s == "cpu") return Device{DeviceType::CPU, 0};
  if (s == "cuda") return Device{DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    const char* digits = s.c_str() + 5;
    char* end = nullptr;
    long idx = std::strtol(digits, &end, 10);
    if (*end == '\0' && idx >= 0 && idx < 1024) return Device{DeviceType::CUDA, int(idx)};
  }
  raise(ErrorKind::Value, "invalid device '", s, "' (expected 'cpu', 'cuda' or 'cuda:N')");
}

}  // namespace lepton
