"""lepton.cuda streams and events: work queued on side streams, ordering by events, timing."""

import numpy as np
import pytest

import lepton

cuda = pytest.mark.cuda


@pytest.mark.skipif(lepton.cuda.is_available(), reason="checks the error without a CUDA device")
def test_streams_without_cuda_raise_clearly():
    with pytest.raises(RuntimeError, match="CUDA"):
        lepton.cuda.Stream()
    with pytest.raises(RuntimeError, match="CUDA"):
        lepton.cuda.Event()


@cuda
def test_work_on_a_side_stream_is_correct_and_ordered():
    a = lepton.randn(512, 512, device="cuda")
    expected = (a.cpu() @ a.cpu()).numpy()
    s = lepton.cuda.Stream()
    s.wait_stream(lepton.cuda.current_stream())  # `a` was written on the default stream
    with lepton.cuda.stream(s):
        assert lepton.cuda.current_stream() == s
        c = a @ a
    assert lepton.cuda.current_stream() != s
    lepton.cuda.current_stream().wait_stream(s)
    np.testing.assert_allclose(c.cpu().numpy(), expected, rtol=1e-4, atol=1e-3)
    s.synchronize()
    assert s.query()


@cuda
def test_events_time_and_synchronize():
    start, end = lepton.cuda.Event(enable_timing=True), lepton.cuda.Event(enable_timing=True)
    x = lepton.randn(2048, 2048, device="cuda")
    start.record()
    for _ in range(3):
        x = x @ x * 1e-3
    end.record()
    end.synchronize()
    assert end.query()
    assert start.elapsed_time(end) > 0
    with pytest.raises(ValueError, match="enable_timing"):
        lepton.cuda.Event().elapsed_time(end)


@cuda
def test_allocations_on_two_streams_do_not_alias_live_data():
    s = lepton.cuda.Stream()
    keep = []
    with lepton.cuda.stream(s):
        for i in range(20):
            keep.append(lepton.full((1024,), float(i), device="cuda"))
    lepton.cuda.synchronize()
    for i, t in enumerate(keep):
        assert float(t.sum()) == 1024.0 * i
