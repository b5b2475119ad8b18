// libnccl loaded at run time with dlopen: the handful of NCCL entry points Lepton calls, with
// the types they need declared here (NCCL's ABI has been stable since 2.x), so the engine has
// no build- or link-time dependency on NCCL and imports on machines without it.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace lepton::dist {

using ncclComm_t = struct ncclComm*;
using ncclResult_t = int;  // 0 = ncclSuccess, 7 = ncclInProgress
constexpr ncclResult_t kNcclSuccess = 0;
constexpr ncclResult_t kNcclInProgress = 7;
constexpr size_t kNcclUniqueIdBytes = 128;
struct ncclUniqueId {
  char internal[kNcclUniqueIdBytes];
};

// ncclDataType_t and ncclRedOp_t values (nccl.h)
enum NcclType : int {
  kInt8 = 0, kUint8 = 1, kInt32 = 2, kInt64 = 4, kFloat16 = 6, kFloat32 = 7, kFloat64 = 8, kBfloat16 = 9
};
enum NcclOp : int { kSum = 0, kProd = 1, kMax = 2, kMin = 3, kAvg = 4 };

struct NcclLib {
  std::string path;
  int version = 0;  // e.g. 22703 for 2.27.3
  ncclResult_t (*GetVersion)(int*);
  ncclResult_t (*GetUniqueId)(ncclUniqueId*);
  ncclResult_t (*CommInitRank)(ncclComm_t*, int nranks, ncclUniqueId id, int rank);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  ncclResult_t (*CommAbort)(ncclComm_t);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*);
  const char* (*GetErrorString)(ncclResult_t);
  ncclResult_t (*AllReduce)(const void*, void*, size_t, int type, int op, ncclComm_t, void* stream);
  ncclResult_t (*Broadcast)(const void*, void*, size_t, int type, int root, ncclComm_t, void* stream);
  ncclResult_t (*AllGather)(const void*, void*, size_t, int type, ncclComm_t, void* stream);
  ncclResult_t (*ReduceScatter)(const void*, void*, size_t, int type, int op, ncclComm_t, void* stream);
};

// Loads NCCL from the first of `candidates` that opens (then the system's libnccl.so.2) and
// keeps it for the life of the process; later calls return the loaded library. Raises a
// RuntimeError naming every place tried when none works.
const NcclLib& load_nccl(const std::vector<std::string>& candidates);
// The loaded library; raises when load_nccl has not succeeded yet.
const NcclLib& nccl();
// Raises a RuntimeError "<what>: NCCL error <n> (<text>)" unless r is success.
void check_nccl(ncclResult_t r, const char* what);

}  // namespace lepton::dist
