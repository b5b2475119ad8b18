"""JSON in and out of the API. Request bodies are strict JSON (UTF-8, no NaN/Infinity literals)
with bounded nesting; responses are strict JSON too, so any JSON parser can read them."""

import json
import math
import re

import numpy as np

from lepton.serve.protocol import HTTPError

__all__ = ["decode_json", "encode_json", "parse_inputs", "MAX_DEPTH"]

MAX_DEPTH = 32  # a request nests 2-6 levels ({"inputs": [sample [rows [cols]]]}); deeper is a mistake or an attack
# a JSON string; an unterminated one matches to the end of the body, so the scan never restarts inside one
# (which would make it quadratic)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def _bad_json(message):
    return HTTPError(400, f"body is not valid JSON: {message}", "bad_json")


def _reject_constant(name):
    raise _bad_json(f"{name} is not a JSON value (send finite numbers)")


def _depth(body):
    """How deep brackets nest in body outside strings; at least as deep as json.loads would recurse."""
    b = np.frombuffer(_STRING.sub(b'""', body), np.uint8)
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int32) - ((b == ord("]")) | (b == ord("}")))
    return int(np.cumsum(step).max(initial=0))


def decode_json(body, max_depth=MAX_DEPTH):
    """The document in body (bytes); 400 for anything that isn't strict JSON or nests deeper than max_depth
    (json.loads would otherwise recurse until RecursionError)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad_json(f"it is not UTF-8 ({e.reason} at byte {e.start})") from None
    depth = _depth(body)
    if depth > max_depth:
        raise HTTPError(400, f"JSON nested {depth} levels deep; the limit is {max_depth}", "too_deep")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise _bad_json(str(e)) from None


def encode_json(doc):
    """Strict JSON bytes; ValueError for NaN or infinity, which JSON has no way to write."""
    return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()


def parse_inputs(body, input_shape, max_samples):
    """float32 [n, *input_shape] from a JSON body {"inputs": [sample, ...]} or {"input": sample};
    a sample with the right number of values but another shape (e.g. flat) is reshaped."""
    doc = decode_json(body)
    if not isinstance(doc, dict) or ("inputs" in doc) == ("input" in doc):
        raise HTTPError(400, 'body must be a JSON object with either "inputs" (a list of samples) or "input" '
                             '(one sample)', "bad_request")
    samples = doc["inputs"] if "inputs" in doc else [doc["input"]]
    if not isinstance(samples, list) or not samples:
        raise HTTPError(400, '"inputs" must be a non-empty list of samples', "bad_request")
    if len(samples) > max_samples:
        raise HTTPError(413, f"{len(samples)} samples in one request; the limit is {max_samples}", "too_large")
    try:
        x = np.asarray(samples)
    except ValueError:
        raise HTTPError(400, "inputs must be a rectangular array of numbers (samples of different sizes?)",
                        "bad_input") from None
    if x.dtype.kind not in "iuf":
        got = "booleans" if x.dtype.kind == "b" else "non-numeric values"
        raise HTTPError(400, f"inputs must be numbers, got {got}", "bad_input")
    per_sample = math.prod(input_shape)
    if x.shape[1:] != tuple(input_shape):
        if x.size != len(samples) * per_sample:
            raise HTTPError(400, f"each sample must have shape {list(input_shape)} ({per_sample} values), got "
                                 f"samples of shape {list(x.shape[1:])}", "bad_shape")
        x = x.reshape(len(samples), *input_shape)
    with np.errstate(over="ignore"):  # checked just below
        x = x.astype(np.float32)
    if not np.isfinite(x).all():  # e.g. 1e39, finite in JSON but not in float32
        raise HTTPError(400, "inputs contain NaN or infinity", "bad_input")
    return x
