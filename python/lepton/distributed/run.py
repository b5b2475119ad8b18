"""Per-rank entry point of `lepton launch`: python -m lepton.distributed.run script.py args...

mpiexec gives every process the same environment; this sets the torchrun-style variables
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) from what the MPI process manager told this
process, then runs the user's script (or `-m module`) as __main__.
"""

import os
import runpy
import sys

from lepton.distributed import env


def export_rank_env():
    for name, value in (("RANK", env.env_rank()), ("WORLD_SIZE", env.env_world_size()),
                        ("LOCAL_RANK", env.env_local_rank()), ("LOCAL_WORLD_SIZE", env.env_local_world_size())):
        if value is not None:
            os.environ.setdefault(name, str(value))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv == ["-m"]:
        print("usage: python -m lepton.distributed.run (script.py | -m module) [args...]", file=sys.stderr)
        return 2
    export_rank_env()
    if argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
