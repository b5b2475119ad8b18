#include "lepton/dist/nccl_lib.h"

#include <dlfcn.h>

#include <mutex>

#include "lepton/core/error.h"

namespace lepton::dist {

namespace {

std::mutex g_mu;
NcclLib* g_lib = nullptr;  // loaded once, never unloaded (communicators may outlive everything)

template <class F>
void bind(void* handle, const std::string& path, const char* name, F*& fn) {
  fn = reinterpret_cast<F*>(dlsym(handle, name));
  LEPTON_CHECK(fn != nullptr, Runtime, "NCCL library ", path, " has no symbol ", name, " (NCCL >= 2.12 is needed)");
}

}  // namespace

const NcclLib& load_nccl(const std::vector<std::string>& candidates) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_lib) return *g_lib;
  std::vector<std::string> tried = candidates;
  tried.push_back("libnccl.so.2");  // the system's, through the dynamic loader's search path
  std::string errors;
  for (const std::string& path : tried) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      errors += "\n  " + path + ": " + (why ? why : "not found");
      continue;
    }
    auto* lib = new NcclLib{};
    lib->path = path;
    bind(handle, path, "ncclGetVersion", lib->GetVersion);
    bind(handle, path, "ncclGetUniqueId", lib->GetUniqueId);
    bind(handle, path, "ncclCommInitRank", lib->CommInitRank);
    bind(handle, path, "ncclCommDestroy", lib->CommDestroy);
    bind(handle, path, "ncclCommAbort", lib->CommAbort);
    bind(handle, path, "ncclCommGetAsyncError", lib->CommGetAsyncError);
    bind(handle, path, "ncclGetErrorString", lib->GetErrorString);
    bind(handle, path, "ncclAllReduce", lib->AllReduce);
    bind(handle, path, "ncclBroadcast", lib->Broadcast);
    bind(handle, path, "ncclAllGather", lib->AllGather);
    bind(handle, path, "ncclReduceScatter", lib->ReduceScatter);
    check_nccl(lib->GetVersion(&lib->version), "ncclGetVersion");
    g_lib = lib;
    return *g_lib;
  }
  raise(ErrorKind::Runtime, "the nccl backend could not load libnccl.so.2 (install it with pip install "
        "'lepton[cuda]', which brings the nvidia-nccl-cu13 wheel, or set LEPTON_NCCL_PATH); tried:", errors);
}

const NcclLib& nccl() {
  std::lock_guard<std::mutex> lock(g_mu);
  LEPTON_CHECK(g_lib != nullptr, Runtime, "NCCL is not loaded (internal error: load_nccl was not called)");
  return *g_lib;
}

void check_nccl(ncclResult_t r, const char* what) {
  if (r == kNcclSuccess) return;
  const char* text = g_lib ? g_lib->GetErrorString(r) : "unknown";
  raise(ErrorKind::Runtime, what, ": NCCL error ", r, " (", text ? text : "unknown", ")");
}

}  // namespace lepton::dist
