"""The `lepton` command."""

import argparse
import sys


def _cmd_info(args):
    import lepton

    for key, value in lepton.info().items():
        print(f"{key:>20}: {value}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="lepton", description="Lepton: a compact, fast deep-learning training engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show the build (version, CPU ISA, threads, CUDA) and the devices found")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"lepton {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
