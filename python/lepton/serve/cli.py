"""The `lepton serve` and `lepton export` subcommands; cli.py adds them with
add_serve_parser(sub) and add_export_parser(sub) (each sets func=... on its parser)."""

import signal
import sys

__all__ = ["add_serve_parser", "add_export_parser"]


def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be in 0..65535, got {value}")
    return value


def _cmd_serve(args):
    from lepton.serve.servable import load_servable
    from lepton.serve.server import InferenceServer

    if args.threads:
        import lepton

        lepton.set_num_threads(args.threads)
    servable = load_servable(args.checkpoint, quantize=args.int8)
    server = InferenceServer(servable, host=args.host, port=args.port, max_body_bytes=args.max_body_bytes,
                             max_samples=args.max_samples, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                             client_timeout=args.client_timeout, max_connections=args.max_connections)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"lepton serve: warning: listening on {args.host}, reachable from other machines; there is no "
              "authentication", file=sys.stderr)
    print(f"serving {servable.name} (version {servable.version}) on {server.url}: POST /predict, GET /healthz, "
          "GET /metrics; Ctrl-C or SIGTERM stops", flush=True)

    def stop(signum, frame):
        print(f"lepton serve: {signal.Signals(signum).name}: finishing the requests in flight (again to force)",
              file=sys.stderr, flush=True)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        server.stop()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, stop)
    server.serve_forever()  # returns once the requests in flight are answered
    return 0


def add_serve_parser(sub):
    p = sub.add_parser("serve", help="serve a checkpoint over HTTP (POST /predict, GET /healthz, GET /metrics)",
                       description="Serve a classification checkpoint written by `lepton train` as a JSON API with "
                                   "dynamic micro-batching and Prometheus metrics. POST /predict takes "
                                   '{"inputs": [sample, ...]} (or {"input": sample}) with 28x28 pixel values in '
                                   "[0, 1] and answers class, label and probabilities per sample.")
    p.add_argument("checkpoint", help="a checkpoint.safetensors or best.safetensors from `lepton train`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--int8", action="store_true", help="serve the int8 dynamically quantised model (lepton.quant)")
    p.add_argument("--max-batch", type=int, default=64, help="samples per model call at most (default 64)")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="how long the first request of a batch waits for others (default 2 ms)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body limit (default 1 MiB)")
    p.add_argument("--max-samples", type=int, default=256, help="samples per request at most (default 256)")
    p.add_argument("--client-timeout", type=float, default=10.0,
                   help="seconds a client may take to send a whole request or take a response; idle "
                        "keep-alive connections close after it too (default 10)")
    p.add_argument("--max-connections", type=int, default=1000,
                   help="open connections at most; more get 503 (default 1000)")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: all cores)")
    p.set_defaults(func=_cmd_serve)
    return p


def _cmd_export(args):
    import numpy as np

    import lepton
    from lepton.serve.servable import load_servable

    try:
        from lepton import onnx
    except ImportError as e:
        raise RuntimeError(f"{e}") from None

    servable = load_servable(args.checkpoint)
    example = lepton.from_numpy(servable.preprocess(np.zeros([1, *servable.input_shape], np.float32)))
    onnx.export(servable.model, example, args.output, opset=args.opset)
    print(f"wrote {args.output} ({servable.name}, opset {args.opset}, dynamic batch); its input is the normalised "
          "image [N, 1, 28, 28]")
    return 0


def add_export_parser(sub):
    p = sub.add_parser("export", help="export a checkpoint to ONNX",
                       description="Write the model of a `lepton train` classification checkpoint as an ONNX file "
                                   "(dynamic batch axis) that onnxruntime and other runtimes can load.")
    p.add_argument("checkpoint", help="a checkpoint from `lepton train`")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.set_defaults(func=_cmd_export)
    return p
