#include "lepton/dist/nccl_comm.h"

#include "lepton/core/cuda_backend.h"
#include "lepton/core/error.h"

namespace lepton::dist {

namespace {

const CudaStreamApi* streams() { return require_cuda(0).streams; }

int nccl_type(DType t) {
  switch (t) {
    case DType::Int8: return kInt8;
    case DType::UInt8: case DType::Bool: return kUint8;
    case DType::Int32: return kInt32;
    case DType::Int64: return kInt64;
    case DType::Float16: return kFloat16;
    case DType::BFloat16: return kBfloat16;
    case DType::Float32: return kFloat32;
    case DType::Float64: return kFloat64;
  }
  raise(ErrorKind::Type, "nccl: unsupported dtype");
}

void check_tensor(const Tensor& t, int device, const char* what) {
  LEPTON_CHECK(t.device().is_cuda() && t.device().index == device, Value, "nccl ", what, ": tensor on ",
               t.device().str(), " but this communicator is on cuda:", device);
  LEPTON_CHECK(t.is_contiguous(), Value, "nccl ", what, ": tensor must be contiguous");
}

}  // namespace

CudaEvent::~CudaEvent() {
  if (handle) streams()->event_destroy(handle, device);
}

// ---- NcclWork

bool NcclWork::is_completed() {
  comm_->check();
  const CudaStreamApi* s = streams();
  if (!s) {
    require_cuda(comm_->device()).synchronize(comm_->device());
    comm_->check();
    return true;
  }
  return s->event_query(done_->handle, done_->device);
}

void NcclWork::wait() {
  comm_->check();
  if (const CudaStreamApi* s = streams()) s->wait_event(s->current(comm_->device()), done_->handle, comm_->device());
}

void NcclWork::synchronize() {
  // Poll rather than block in cudaEventSynchronize: the watchdog may abort the communicator.
  while (!is_completed()) std::this_thread::sleep_for(std::chrono::microseconds(50));
  keep_.clear();
}

// ---- NcclComm

std::shared_ptr<NcclComm> NcclComm::create(const ncclUniqueId& id, int rank, int size, int device, double timeout_s) {
  LEPTON_CHECK(size >= 1 && rank >= 0 && rank < size, Value, "nccl: rank ", rank, " is outside a world of ", size);
  LEPTON_CHECK(timeout_s > 0, Value, "nccl: timeout must be positive, got ", timeout_s);
  const CudaBackend& cuda = require_cuda(device);
  cuda.set_device(device);
  std::shared_ptr<NcclComm> c(new NcclComm(rank, size, device, timeout_s));
  check_nccl(c->lib_.CommInitRank(&c->comm_, size, id, rank), "ncclCommInitRank");
  if (cuda.streams) c->stream_ = cuda.streams->create(device, /*priority=*/-1);
  c->watchdog_ = std::thread([raw = c.get()] { raw->watch(); });
  return c;
}

NcclComm::~NcclComm() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  if (comm_) lib_.CommDestroy(comm_);  // no throwing from a destructor: the result is ignored
  if (stream_) streams()->destroy(stream_, device_);
}

void NcclComm::check() const {
  std::lock_guard<std::mutex> lock(mu_);
  LEPTON_CHECK(error_.empty(), Runtime, error_);
  LEPTON_CHECK(comm_ != nullptr, Runtime, "nccl: the communicator was destroyed");
}

std::string NcclComm::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void NcclComm::abort(const std::string& why) {
  ncclComm_t comm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.empty() || !comm_) return;
    error_ = why;
    comm = comm_;
    comm_ = nullptr;
    pending_.clear();
  }
  lib_.CommAbort(comm);  // unblocks kernels waiting on dead peers
}

void NcclComm::destroy() {
  ncclComm_t comm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    comm = comm_;
    comm_ = nullptr;
  }
  if (comm) check_nccl(lib_.CommDestroy(comm), "ncclCommDestroy");
}

template <class Call>
std::shared_ptr<NcclWork> NcclComm::launch(const char* name, std::vector<Tensor> keep, Call&& call) {
  check();
  const CudaStreamApi* s = streams();
  auto done = std::make_shared<CudaEvent>();
  done->device = device_;
  if (s) {
    // The collective starts after everything already queued on the current stream.
    auto ready = std::make_shared<CudaEvent>();
    ready->device = device_;
    ready->handle = s->event_create(device_, false);
    s->event_record(ready->handle, s->current(device_), device_);
    s->wait_event(stream_, ready->handle, device_);
    done->handle = s->event_create(device_, false);
  }
  ncclComm_t comm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    comm = comm_;
  }
  check_nccl(call(comm), name);
  if (s) {
    s->event_record(done->handle, stream_, device_);
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back({done, std::chrono::steady_clock::now() +
                                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(timeout_s_)),
                        name});
  }
  wake_.notify_all();
  return std::make_shared<NcclWork>(shared_from_this(), done, std::move(keep), name);
}

void NcclComm::watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    if (stopping_ || !comm_) continue;
    std::string why;
    ncclResult_t async = kNcclSuccess;
    lib_.CommGetAsyncError(comm_, &async);
    if (async != kNcclSuccess && async != kNcclInProgress) {
      why = std::string("nccl: asynchronous error on rank ") + std::to_string(rank_) + ": " +
            lib_.GetErrorString(async);
    }
    const auto now = std::chrono::steady_clock::now();
    const CudaStreamApi* s = pending_.empty() ? nullptr : streams();
    for (size_t i = 0; i < pending_.size() && why.empty();) {
      if (s->event_query(pending_[i].done->handle, device_)) {
        pending_.erase(pending_.begin() + i);
      } else if (now > pending_[i].deadline) {
        why = "lepton.distributed: nccl " + pending_[i].name + " did not finish within " + std::to_string(timeout_s_) +
              " s on rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
              "; a peer has probably died, raised or hung; the communicator was aborted";
      } else {
        ++i;
      }
    }
    if (!why.empty()) {
      lock.unlock();
      abort(why);
      lock.lock();
    }
  }
}

std::shared_ptr<NcclWork> NcclComm::all_reduce(const Tensor& t, NcclOp op) {
  check_tensor(t, device_, "all_reduce");
  const int type = nccl_type(t.dtype());
  LEPTON_CHECK(t.dtype() != DType::Bool || op == kMax || op == kMin, Type,
               "nccl all_reduce: bool tensors take MAX or MIN");
  return launch("all_reduce", {t}, [&](ncclComm_t c) {
    return lib_.AllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), type, op, c, stream_);
  });
}

std::shared_ptr<NcclWork> NcclComm::broadcast(const Tensor& t, int root) {
  check_tensor(t, device_, "broadcast");
  LEPTON_CHECK(root >= 0 && root < size_, Value, "nccl broadcast: root ", root, " outside a world of ", size_);
  return launch("broadcast", {t}, [&](ncclComm_t c) {
    return lib_.Broadcast(t.data_ptr(), t.data_ptr(), t.nbytes(), kUint8, root, c, stream_);
  });
}

std::shared_ptr<NcclWork> NcclComm::all_gather(const Tensor& out, const Tensor& in) {
  check_tensor(out, device_, "all_gather");
  check_tensor(in, device_, "all_gather");
  LEPTON_CHECK(out.nbytes() == in.nbytes() * size_t(size_), Value, "nccl all_gather: output has ", out.nbytes(),
               " bytes, expected ", size_, " x ", in.nbytes());
  return launch("all_gather", {out, in}, [&](ncclComm_t c) {
    return lib_.AllGather(in.data_ptr(), out.data_ptr(), in.nbytes(), kUint8, c, stream_);
  });
}

std::shared_ptr<NcclWork> NcclComm::reduce_scatter(const Tensor& out, const Tensor& in, NcclOp op) {
  check_tensor(out, device_, "reduce_scatter");
  check_tensor(in, device_, "reduce_scatter");
  LEPTON_CHECK(in.dtype() == out.dtype() && in.numel() == out.numel() * size_, Value,
               "nccl reduce_scatter: input must hold ", size_, " x output's ", out.numel(), " elements");
  const int type = nccl_type(in.dtype());
  return launch("reduce_scatter", {out, in}, [&](ncclComm_t c) {
    return lib_.ReduceScatter(in.data_ptr(), out.data_ptr(), size_t(out.numel()), type, op, c, stream_);
  });
}

}  // namespace lepton::dist
