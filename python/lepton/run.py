"""`python -m lepton.run script.py [args...]` (and `lepton run`): run a PyTorch program on Lepton.

The script runs as `__main__` with sys.argv = [script, args...] and its directory first on
sys.path, exactly as `python script.py` would run it, except that `import torch` and
`import torchvision` give Lepton's modules (lepton.compat). `-m module` runs a module instead.
"""

import os
import runpy
import sys

USAGE = "usage: python -m lepton.run (SCRIPT.py | -m MODULE) [ARGS...]"


def run(argv):
    """Runs the program; returns normally or raises what it raised (SystemExit included)."""
    from lepton import compat

    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit(USAGE)
    compat.install()
    if argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit(USAGE)
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return
    path = argv[0]
    if not os.path.isfile(path):
        raise SystemExit(f"lepton run: error: no such script '{path}'")
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    run(sys.argv[1:])
