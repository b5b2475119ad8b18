"""`lepton launch -n N [--hosts a,b] script.py args`: start N ranks through mpiexec.

Each rank runs `python -m lepton.distributed.run script.py args`, which sets RANK, WORLD_SIZE,
LOCAL_RANK and LOCAL_WORLD_SIZE before the script starts, so scripts written for torchrun
work unchanged; the script then calls lepton.distributed.init_process_group().
"""

import os
import shutil
import subprocess
import sys


def find_mpiexec():
    """mpiexec of this Python's environment (the mpich wheel's), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec")
    if found is None:
        raise RuntimeError("lepton launch needs mpiexec: pip install 'lepton[dist]' (mpi4py + mpich), "
                           "or put an MPI installation's mpiexec on PATH")
    return found


def launch_command(nproc, script_args, hosts=None, timeout=None, mpiexec=None):
    """The mpiexec command line that runs `script_args` on `nproc` ranks."""
    if int(nproc) < 1:
        raise ValueError(f"lepton launch: -n must be at least 1, got {nproc}")
    if not script_args:
        raise ValueError("lepton launch: no script given (lepton launch -n N script.py [args...])")
    cmd = [mpiexec or find_mpiexec(), "-n", str(int(nproc))]
    if hosts:
        cmd += ["-hosts", hosts]
    if timeout is not None:
        if float(timeout) <= 0:
            raise ValueError(f"lepton launch: --timeout must be positive, got {timeout}")
        cmd += ["-genv", "LEPTON_DIST_TIMEOUT", str(timeout)]
    return cmd + [sys.executable, "-m", "lepton.distributed.run"] + list(script_args)


def launch(nproc, script_args, hosts=None, timeout=None):
    """Run the job and return its exit status (non-zero when any rank failed)."""
    return subprocess.call(launch_command(nproc, script_args, hosts, timeout))


def _cmd_launch(args):
    target = ["-m"] + args.module if args.module else args.script
    cmd = launch_command(args.nproc, target, args.hosts, args.timeout)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    return subprocess.call(cmd)


def add_launch_parser(subparsers):
    """Register `launch` on the `lepton` command's subparsers."""
    import argparse

    p = subparsers.add_parser("launch", help="run a script on N processes (mpiexec), with RANK/LOCAL_RANK/... set",
                              description="Start N ranks of a training script through mpiexec; each gets RANK, "
                                          "WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE.")
    p.add_argument("-n", "--nproc", type=int, required=True, help="number of processes (ranks)")
    p.add_argument("--hosts", help="comma-separated host names (mpiexec -hosts)")
    p.add_argument("--timeout", type=float, help="seconds a collective may wait for its peers (default 60)")
    p.add_argument("--dry-run", action="store_true", help="print the mpiexec command instead of running it")
    p.add_argument("-m", dest="module", nargs=argparse.REMAINDER, help="run a module: -m pkg.train [args...]")
    p.add_argument("script", nargs=argparse.REMAINDER, help="script.py [args...]")
    p.set_defaults(func=_cmd_launch)
    return p
