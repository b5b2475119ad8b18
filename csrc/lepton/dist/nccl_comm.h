// An NCCL communicator over CUDA tensors: collectives on a dedicated stream, ordered after the
// work already queued on the current stream by an event (no host synchronisation), and a
// watchdog thread that aborts the communicator (ncclCommAbort) when a collective outlives the
// timeout or NCCL reports an asynchronous error, so a dead peer becomes an exception, not a hang.
//
// Without a stream API in the CUDA backend (cuda_backend()->streams == nullptr) everything runs
// on the legacy default stream, which is ordered with compute by construction; completion is
// then only observable by synchronising the device, so the per-collective timeout is not
// enforced (asynchronous NCCL errors still are).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lepton/core/tensor.h"
#include "lepton/dist/nccl_lib.h"

namespace lepton::dist {

// A CUDA event (cudaEvent_t) owned with its device.
struct CudaEvent {
  void* handle = nullptr;
  int device = 0;
  ~CudaEvent();
};

class NcclComm;

// One collective in flight.
class NcclWork {
 public:
  NcclWork(std::shared_ptr<NcclComm> comm, std::shared_ptr<CudaEvent> done, std::vector<Tensor> keep, std::string name)
      : comm_(std::move(comm)), done_(std::move(done)), keep_(std::move(keep)), name_(std::move(name)) {}
  bool is_completed();  // raises the communicator's error if it failed
  void wait();          // the current stream waits for the collective; raises on a failed communicator
  void synchronize();   // the host waits (watchdog-bounded); releases the kept tensors

 private:
  std::shared_ptr<NcclComm> comm_;
  std::shared_ptr<CudaEvent> done_;
  std::vector<Tensor> keep_;  // the buffers NCCL reads or writes, alive until the work is done
  std::string name_;
};

class NcclComm : public std::enable_shared_from_this<NcclComm> {
 public:
  // Collective over all `size` ranks (each calls it with the same id); `device` is this rank's GPU.
  static std::shared_ptr<NcclComm> create(const ncclUniqueId& id, int rank, int size, int device, double timeout_s);
  ~NcclComm();

  std::shared_ptr<NcclWork> all_reduce(const Tensor& t, NcclOp op);
  std::shared_ptr<NcclWork> broadcast(const Tensor& t, int root);
  std::shared_ptr<NcclWork> all_gather(const Tensor& out, const Tensor& in);
  std::shared_ptr<NcclWork> reduce_scatter(const Tensor& out, const Tensor& in, NcclOp op);

  void abort(const std::string& why);  // ncclCommAbort; every later call raises `why`
  void destroy();                      // ncclCommDestroy (all ranks together)
  void check() const;                  // raises the recorded error, if any
  std::string error() const;
  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  void* stream() const { return stream_; }

 private:
  NcclComm(int rank, int size, int device, double timeout_s)
      : rank_(rank), size_(size), device_(device), timeout_s_(timeout_s) {}
  template <class Call>
  std::shared_ptr<NcclWork> launch(const char* name, std::vector<Tensor> keep, Call&& call);
  void watch();

  struct Pending {
    std::shared_ptr<CudaEvent> done;
    std::chrono::steady_clock::time_point deadline;
    std::string name;
  };

  const NcclLib& lib_ = nccl();
  ncclComm_t comm_ = nullptr;
  int rank_, size_, device_;
  double timeout_s_;
  void* stream_ = nullptr;  // null: the legacy default stream
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Pending> pending_;
  std::string error_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace lepton::dist
