"""lepton.cuda: CUDA availability, devices, memory, streams and events, as in torch.cuda."""

import contextlib

from lepton import _C

_cuda = _C._cuda


def is_available():
    """True when Lepton was built with CUDA and a driver and device are present."""
    return _cuda.is_compiled() and _cuda.device_count() > 0


def device_count():
    return _cuda.device_count()


def synchronize(device=None):
    """Wait for the device's queued work. Without a GPU there is none: every op ran synchronously."""
    if is_available():
        _cuda.synchronize(_index(device))


def memory_allocated(device=None):
    """Bytes currently handed out by Lepton's caching allocator on `device`."""
    return _cuda.memory_allocated(_index(device) or 0)


def memory_reserved(device=None):
    """Bytes held from the driver (allocated plus cached) on `device`."""
    return _cuda.memory_reserved(_index(device) or 0)


def max_memory_allocated(device=None):
    """The most bytes memory_allocated reached on `device` since the start or the last
    reset_peak_memory_stats."""
    return _cuda.max_memory_allocated(_index(device) or 0)


def reset_peak_memory_stats(device=None):
    """Starts max_memory_allocated afresh from what is allocated now."""
    _cuda.reset_peak_memory_stats(_index(device) or 0)


def empty_cache():
    """Return cached, unused blocks to the driver."""
    _cuda.empty_cache()


def get_device_name(device=None):
    return _cuda.get_device_name(_index(device) or 0)


_current_device = 0


def set_device(device):
    """Make `device` (an index, "cuda:N" or a device) the one `current_device()` names."""
    global _current_device
    index = _index(device)
    _cuda.set_device(index)
    _current_device = index


def current_device():
    return _current_device


class Stream:
    """A CUDA stream. Lepton queues every kernel and copy on the current stream of the calling
    thread; `with lepton.cuda.stream(s):` makes `s` current. Unlike the default stream, a new
    stream does not wait for other streams by itself: order work with events or `wait_stream`.
    """

    def __init__(self, device=None, priority=0, *, _handle=None):
        self.device_index = current_device() if device is None else _index(device)
        self._owned = _handle is None
        self.cuda_stream = _cuda.stream_create(self.device_index, priority) if _handle is None else _handle

    def synchronize(self):
        """Wait on the host until everything queued on this stream has finished."""
        _cuda.stream_synchronize(self.cuda_stream, self.device_index)

    def query(self):
        """True when everything queued on this stream has finished."""
        return _cuda.stream_query(self.cuda_stream, self.device_index)

    def wait_event(self, event):
        """Make work queued on this stream from now on wait for `event`."""
        _cuda.stream_wait_event(self.cuda_stream, event.cuda_event, self.device_index)

    def wait_stream(self, stream):
        """Make work queued on this stream from now on wait for what `stream` has queued so far."""
        self.wait_event(stream.record_event())

    def record_event(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def __eq__(self, other):
        return isinstance(other, Stream) and (self.cuda_stream, self.device_index) == (other.cuda_stream, other.device_index)

    def __hash__(self):
        return hash((self.cuda_stream, self.device_index))

    def __del__(self):
        if getattr(self, "_owned", False) and self.cuda_stream:
            _cuda.stream_destroy(self.cuda_stream, self.device_index)

    def __repr__(self):
        return f"<lepton.cuda.Stream device=cuda:{self.device_index} cuda_stream={self.cuda_stream:#x}>"


class Event:
    """A CUDA event: a point in a stream's work to wait for or to time against."""

    def __init__(self, enable_timing=False, device=None):
        self.device_index = current_device() if device is None else _index(device)
        self.enable_timing = enable_timing
        self.cuda_event = _cuda.event_create(self.device_index, enable_timing)

    def record(self, stream=None):
        stream = current_stream(self.device_index) if stream is None else stream
        _cuda.event_record(self.cuda_event, stream.cuda_stream, self.device_index)

    def wait(self, stream=None):
        (current_stream(self.device_index) if stream is None else stream).wait_event(self)

    def synchronize(self):
        _cuda.event_synchronize(self.cuda_event, self.device_index)

    def query(self):
        return _cuda.event_query(self.cuda_event, self.device_index)

    def elapsed_time(self, end_event):
        """Milliseconds between this event and `end_event` (both recorded, with enable_timing=True)."""
        if not (self.enable_timing and end_event.enable_timing):
            raise ValueError("elapsed_time needs both events created with enable_timing=True")
        return _cuda.event_elapsed_ms(self.cuda_event, end_event.cuda_event, self.device_index)

    def __del__(self):
        if getattr(self, "cuda_event", 0):
            _cuda.event_destroy(self.cuda_event, self.device_index)


def current_stream(device=None):
    index = current_device() if device is None else _index(device)
    return Stream(index, _handle=_cuda.current_stream(index))


def default_stream(device=None):
    index = current_device() if device is None else _index(device)
    return Stream(index, _handle=0)


def set_stream(stream):
    _cuda.set_stream(stream.cuda_stream, stream.device_index)


@contextlib.contextmanager
def stream(s):
    """Queue the work of the `with` block on stream `s` (None: leave the current stream)."""
    if s is None:
        yield
        return
    previous = current_stream(s.device_index)
    set_stream(s)
    try:
        yield s
    finally:
        set_stream(previous)


def _index(device):
    if device is None:
        return None
    if isinstance(device, int):
        return device
    d = _C.device(device)
    if d.type != "cuda":
        raise ValueError(f"expected a CUDA device, got {d}")
    return d.index


# ---- seeds and capability queries, safe on a machine without a GPU ----------------------------
# Lepton draws from one Philox stream for CPU and CUDA alike, so seeding CUDA seeds that stream.

def manual_seed(seed):
    from lepton._generator import manual_seed as seed_all_devices

    seed_all_devices(seed)


manual_seed_all = manual_seed


def seed():
    from lepton._generator import seed as reseed

    reseed()


seed_all = seed


def initial_seed():
    return _C.initial_seed()


def is_bf16_supported(including_emulation=True):
    """Lepton's CUDA kernels are built for sm_80 and newer, which all have bfloat16 tensor cores;
    False without a GPU."""
    return is_available()


def __getattr__(name):  # lepton.cuda.amp (torch.cuda.amp): loaded on first use
    if name == "amp":
        import lepton.amp.cuda_amp

        return lepton.amp.cuda_amp
    raise AttributeError(f"module 'lepton.cuda' has no attribute '{name}'")
