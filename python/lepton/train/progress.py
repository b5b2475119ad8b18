"""The training progress display: a live one-line bar on a terminal, plain lines elsewhere.

A small bar of our own rather than tqdm: the trainer needs samples/s (not iterations/s), a
redraw throttled by time so that a 0.3 ms training step pays one clock read for it, and the
same summary line whether or not the output is a terminal; that is 80 lines, not a dependency.
"""

import shutil
import sys
import time


def _fmt_value(v):
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}"
    return str(v)


def _fmt_rate(samples_per_s):
    if samples_per_s >= 1e3:
        return f"{samples_per_s / 1e3:.1f}k samples/s"
    return f"{samples_per_s:.1f} samples/s"


def _fmt_time(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def format_logs(logs):
    return "  ".join(f"{k} {_fmt_value(v)}" for k, v in logs.items())


class ProgressBar:
    """Shows one epoch. live=True redraws a bar in place (at most every `interval` seconds);
    live=False prints only the summary line from close()."""

    def __init__(self, desc, total=None, live=None, file=None, interval=0.1, width=24):
        self.file = file or sys.stdout
        self.live = self.file.isatty() if live is None else live
        self.desc, self.total, self.interval, self.width = desc, total, interval, width
        self.count, self.samples = 0, 0
        self.start = self._last = time.perf_counter()

    def update(self, count, samples, logs_fn):
        """count batches and samples done so far in the epoch; logs_fn() gives the figures to show
        (called only when a redraw is due)."""
        self.count, self.samples = count, samples
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._draw(now, logs_fn())

    def _draw(self, now, logs):
        elapsed = max(now - self.start, 1e-9)
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(done * self.width)
            bar = "=" * filled + (">" if filled < self.width else "") + " " * (self.width - filled - 1)
            eta = elapsed / max(self.count, 1) * (self.total - self.count)
            where = f"{self.count}/{self.total} [{bar}] ETA {_fmt_time(eta)}"
        else:
            where = f"{self.count}"
        line = f"{self.desc}  {where}  {_fmt_rate(self.samples / elapsed)}  {format_logs(logs)}"
        width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be redrawn in place
        self.file.write("\r" + line[:width] + "\x1b[K")
        self.file.flush()

    def close(self, logs, seconds=None, samples_per_s=None):
        """Writes the epoch's summary line (replacing the live bar)."""
        seconds = time.perf_counter() - self.start if seconds is None else seconds
        rate = self.samples / max(seconds, 1e-9) if samples_per_s is None else samples_per_s
        line = f"{self.desc}  {self.count} batches  {seconds:.1f}s  {format_logs(logs)}  {_fmt_rate(rate)}"
        self.file.write(("\r" + line + "\x1b[K\n") if self.live else line + "\n")
        self.file.flush()
