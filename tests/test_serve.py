"""lepton.serve: a real server on a free loopback port, real HTTP requests (valid, malformed,
oversized, concurrent), micro-batching, /metrics, and the `lepton serve` checkpoint path."""

import http.client
import json
import re
import threading

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.serve import InferenceServer, MicroBatcher, Servable
from lepton.serve.servable import file_version, load_servable


def _model():
    lepton.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


@pytest.fixture
def server():
    model = _model()
    srv = InferenceServer(Servable(model, (3, 4), name="tiny", version="v1"), port=0, max_body_bytes=4096,
                          max_samples=8, max_batch=16, max_wait_ms=20).start()
    yield srv, model
    srv.close()


def _request(srv, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        payload = r.read()
        return r.status, r.getheader("Content-Type"), payload
    finally:
        conn.close()


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _json(srv, method, path, body=None, headers=None):
    status, ctype, payload = _request(srv, method, path, body, headers)
    assert ctype == "application/json"
    return status, json.loads(payload, parse_constant=_no_constant)  # strict: NaN/Infinity are not JSON


def _metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_binds_loopback_and_health(server):
    srv, _ = server
    assert srv.host == "127.0.0.1" and srv.port > 0
    status, body = _json(srv, "GET", "/healthz")
    assert status == 200 and body == {"status": "ok", "model": "tiny", "model_version": "v1", "input_shape": [3, 4]}


def test_predict_matches_model(server):
    srv, model = server
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    status, body = _json(srv, "POST", "/predict", {"inputs": x.tolist()})
    assert status == 200 and body["model_version"] == "v1"
    with lepton.no_grad():
        want = model(lepton.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.array(body["outputs"]), want, rtol=1e-5, atol=1e-6)
    # one sample, given flat: reshaped to the input shape
    status, body = _json(srv, "POST", "/predict", {"input": x[0].reshape(-1).tolist()})
    assert status == 200 and len(body["outputs"]) == 1
    np.testing.assert_allclose(body["outputs"][0], want[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("body,code,message", [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    ({"x": 1}, 400, 'either "inputs"'),
    ({"inputs": [], "input": []}, 400, 'either "inputs"'),
    ([1, 2], 400, 'either "inputs"'),
    ({"inputs": []}, 400, "non-empty list"),
    ({"inputs": "abc"}, 400, "non-empty list"),
    ({"inputs": [[1, 2], [3]]}, 400, "rectangular"),
    ({"inputs": [["a"] * 12]}, 400, "must be numbers"),
    ({"inputs": [[True] * 12]}, 400, "must be numbers"),
    ({"inputs": [[1.0] * 11]}, 400, r"each sample must have shape \[3, 4\]"),
    ({"input": [[1.0] * 5] * 3}, 400, r"got samples of shape \[3, 5\]"),
    ({"inputs": [[1e39] * 12]}, 400, "NaN or infinity"),
    (b'{"inputs": [[NaN, 1]]}', 400, "NaN is not a JSON value"),
    (b'{"inputs": [[-Infinity]]}', 400, "-Infinity is not a JSON value"),
    (b'{"inputs": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400, "nested 2001 levels deep; the limit is 32"),
    (b'{"inputs": ' + b"[" * 33 + b"0" + b"]" * 33 + b"}", 400, "nested 34 levels deep"),
    (b'{"inputs": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[[[["}', 400, "non-empty list"),  # strings don't nest
    (b'{"inputs": "' + b'\\"[' * 1000, 400, "not valid JSON: Unterminated string"),
    ({"inputs": [[0.0] * 12] * 9}, 413, "9 samples in one request; the limit is 8"),
])
def test_bad_requests_get_clear_errors(server, body, code, message):
    srv, _ = server
    status, payload = _json(srv, "POST", "/predict", body)
    assert status == code and re.search(message, payload["error"]), payload
    assert _json(srv, "GET", "/healthz")[0] == 200  # still serving


def test_oversized_wrong_method_and_paths(server):
    srv, _ = server
    status, payload = _json(srv, "POST", "/predict", b"[" + b"0," * 5000 + b"0]")
    assert status == 413 and "exceeds the limit of 4096" in payload["error"]
    assert _json(srv, "GET", "/predict")[0] == 405
    assert _json(srv, "POST", "/metrics", {})[0] == 405
    assert _json(srv, "GET", "/nope")[0] == 404
    # no Content-Length: refused without reading
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.putrequest("POST", "/predict")
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 411 and "Content-Length" in json.loads(r.read())["error"]
    conn.close()


def test_concurrent_requests_are_batched_and_metrics(server):
    srv, model = server
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1 + i % 3, 3, 4)).astype(np.float32) for i in range(24)]
    results = [None] * len(xs)
    start = threading.Barrier(len(xs))

    def client(i):
        start.wait()
        results[i] = _json(srv, "POST", "/predict", {"inputs": xs[i].tolist()})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, (status, body) in zip(xs, results):
        assert status == 200
        with lepton.no_grad():
            np.testing.assert_allclose(np.array(body["outputs"]), model(lepton.from_numpy(x)).numpy(),
                                       rtol=1e-5, atol=1e-6)
    _json(srv, "POST", "/predict", {"inputs": "bad"})
    status, ctype, text = _request(srv, "GET", "/metrics")
    text = text.decode()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert _metric(text, "lepton_requests_total", path="/predict", code=200) == len(xs)
    assert _metric(text, "lepton_requests_total", path="/predict", code=400) == 1
    assert _metric(text, "lepton_errors_total", kind="bad_request") == 1
    assert _metric(text, "lepton_request_duration_seconds_count", path="/predict") == len(xs) + 1
    assert _metric(text, "lepton_request_duration_seconds_bucket", path="/predict", le="+Inf") == len(xs) + 1
    assert 'lepton_model_info{name="tiny",version="v1"} 1' in text
    calls = _metric(text, "lepton_batch_size_count")
    samples = _metric(text, "lepton_batch_size_sum")
    assert samples == sum(len(x) for x in xs)
    assert calls < len(xs)  # concurrent requests shared model calls


def test_model_failure_is_a_500_not_a_crash():
    def broken(x):
        raise RuntimeError("boom")

    srv = InferenceServer(Servable(lambda t: broken(t), (2,), name="broken"), port=0).start()
    try:
        status, body = _json(srv, "POST", "/predict", {"inputs": [[1, 2]]})
        assert status == 500 and "RuntimeError: boom" in body["error"]
        assert _json(srv, "GET", "/healthz")[0] == 200
        text = _request(srv, "GET", "/metrics")[2].decode()
        assert _metric(text, "lepton_errors_total", kind="model_error") == 1
    finally:
        srv.close()


class _NaNWhereNegative:
    """A model whose output is NaN for samples with a negative first value and +inf where it is 0."""

    def __call__(self, t):
        x = t.numpy()
        y = np.where(x[:, :1] < 0, np.nan, np.where(x[:, :1] == 0, np.inf, x))
        return lepton.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def test_non_finite_model_output_is_a_json_error():
    """NaN/Infinity are not JSON: such an output gives a 500 naming the samples, and every body
    parses with a strict parser (_json)."""
    with InferenceServer(Servable(_NaNWhereNegative(), (2,), name="nan"), port=0) as srv:
        status, body = _json(srv, "POST", "/predict", {"inputs": [[1, 2], [-1, 2], [0, 5]]})
        assert status == 500 and "sample(s) [1, 2]" in body["error"] and "NaN or infinity" in body["error"], body
        status, body = _json(srv, "POST", "/predict", {"inputs": [[1, 2], [3, 4]]})
        assert status == 200 and body["outputs"] == [[1, 2], [3, 4]]
        text = _request(srv, "GET", "/metrics")[2].decode()
        assert _metric(text, "lepton_errors_total", kind="model_nonfinite") == 1


def test_non_finite_logits_through_the_classifier_postprocess():
    from lepton.serve.servable import _classifier_post

    servable = Servable(_NaNWhereNegative(), (2,), name="nan", postprocess=_classifier_post(["a", "b"]))
    with InferenceServer(servable, port=0) as srv:
        status, body = _json(srv, "POST", "/predict", {"input": [0, 1]})  # an infinite logit: NaN probabilities
        assert status == 500 and "sample(s) [0]" in body["error"]
        status, body = _json(srv, "POST", "/predict", {"input": [1, 3]})
        assert status == 200 and body["outputs"][0]["label"] == "b"


def test_micro_batcher_groups_by_shape():
    calls = []

    def fn(x):
        calls.append(x.shape)
        return x * 2

    b = MicroBatcher(fn, max_batch=8, max_wait=0.05)
    try:
        out = [None] * 6
        xs = [np.full((1, 2), i, np.float32) if i % 2 else np.full((2, 3), i, np.float32) for i in range(6)]
        threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, b.submit(xs[i]))) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for x, y in zip(xs, out):
            np.testing.assert_array_equal(y, x * 2)
        assert all(s[1:] in ((2,), (3,)) for s in calls) and len(calls) < 6
    finally:
        b.close()
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        MicroBatcher(fn, max_batch=0)


def _trainer_checkpoint(tmp_path):
    trainer = pytest.importorskip("lepton.train.trainer")
    recipes = pytest.importorskip("lepton.train.recipes")
    config = recipes.make_config("mnist-mlp")
    model = recipes.build_model(config)
    path = tmp_path / "checkpoint.safetensors"
    lepton.save({"format": trainer.CHECKPOINT_FORMAT, "model": model.state_dict(), "config": config}, str(path))
    return path, model


def test_serve_a_trainer_checkpoint(tmp_path):
    """The `lepton serve CHECKPOINT` path: a checkpoint in `lepton train`'s format."""
    path, model = _trainer_checkpoint(tmp_path)
    recipes = pytest.importorskip("lepton.train.recipes")
    servable = load_servable(str(path))
    assert servable.version == file_version(str(path)) and servable.input_shape == (28, 28)
    with InferenceServer(servable, port=0) as srv:
        x = np.random.default_rng(2).random((2, 28, 28)).astype(np.float32)
        status, body = _json(srv, "POST", "/predict", {"inputs": x.tolist()})
        assert status == 200
        mean, std = recipes._IMAGE_STATS["mnist"]
        with lepton.no_grad():
            logits = model.eval()(lepton.from_numpy((x - mean) / std).reshape([2, 1, 28, 28])).numpy()
        for row, out in zip(logits, body["outputs"]):
            assert out["class"] == int(row.argmax()) and out["label"] == str(row.argmax())
            p = np.exp(row - row.max())
            np.testing.assert_allclose(out["probabilities"], p / p.sum(), atol=2e-6)
    int8 = load_servable(str(path), quantize=True)
    assert int8.name == "mnist-mlp-int8"
    bad = tmp_path / "other.safetensors"
    lepton.save({"model": model.state_dict()}, str(bad))
    with pytest.raises(ValueError, match="not a checkpoint written by `lepton train`"):
        load_servable(str(bad))


def test_serve_command_end_to_end(tmp_path):
    """`serve CHECKPOINT --port 0` in its own process: it prints its URL, answers, and stops on SIGINT."""
    import signal
    import subprocess
    import sys

    path, _ = _trainer_checkpoint(tmp_path)
    code = ("import argparse, sys; from lepton.serve.cli import add_serve_parser; p = argparse.ArgumentParser(); "
            "add_serve_parser(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", str(path), "--port", "0", "--int8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert url, (line, proc.stderr.read() if proc.poll() is not None else "")
        conn = http.client.HTTPConnection("127.0.0.1", int(url.group(1)), timeout=10)
        conn.request("POST", "/predict", json.dumps({"input": [0.5] * 784}))
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and body["model"] == "mnist-mlp-int8" and len(body["outputs"][0]["probabilities"]) == 10
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_export_command(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import argparse

    from lepton.serve.cli import add_export_parser

    path, _ = _trainer_checkpoint(tmp_path)
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers())
    args = parser.parse_args(["export", str(path), str(tmp_path / "m.onnx")])
    assert args.func(args) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((3, 1, 28, 28), np.float32)})[0].shape == (3, 10)


def test_cli_parser_hook():
    import argparse

    from lepton.serve.cli import add_export_parser, add_serve_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_serve_parser(sub)
    add_export_parser(sub)
    args = parser.parse_args(["serve", "ckpt.safetensors"])
    assert (args.host, args.port, args.int8) == ("127.0.0.1", 8000, False) and callable(args.func)
    args = parser.parse_args(["serve", "c", "--port", "0", "--host", "0.0.0.0", "--int8"])
    assert (args.host, args.port, args.int8) == ("0.0.0.0", 0, True)
    args = parser.parse_args(["export", "c", "out.onnx"])
    assert args.opset == 17 and callable(args.func)
