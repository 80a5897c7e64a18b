"""Where a service's time goes: py-spy samples the process during a benchmark.

`python -m bench.run --profile checkin` (or gate/booking/search) records the
named service while its closed-loop run is under way and writes
reports/profile-<name>.txt (collapsed stacks) plus a summary of the frames
that hold most samples. py-spy is not a runtime dependency: install it
anywhere (`pip install py-spy`) and point PY_SPY at it if it is not on PATH.
"""
import collections
import contextlib
import os
import shutil
import subprocess

from bench.stack import ROOT


def py_spy():
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


@contextlib.contextmanager
def sampled(pid, name, seconds):
    """Record `pid` for `seconds` while the body runs; yields the output path."""
    exe = py_spy()
    out = os.path.join(ROOT, "reports", "profile-%s.txt" % name)
    if not exe:
        yield None
        return
    proc = subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(seconds), "-r", "200",
                             "-f", "raw", "-o", out, "--nonblocking", "--function"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield out
    finally:
        proc.wait(seconds + 30)


def summarise(path, top=12):
    """Lines: share of samples per own-code frame (inclusive), and the leaf
    frames (exclusive) that cost most, from py-spy's collapsed stacks."""
    if not path or not os.path.exists(path):
        return []
    inclusive, leaf = collections.Counter(), collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            seen = set()
            for frame in frames:
                if _own(frame) and frame not in seen:
                    seen.add(frame)
                    inclusive[_short(frame)] += n
            leaf[_short(frames[-1])] += n
    if not total:
        return []
    lines = ["%d samples; own code, inclusive:" % total]
    lines += ["  %5.1f %%  %s" % (100.0 * n / total, f) for f, n in inclusive.most_common(top)]
    lines += ["leaf frames (where the CPU actually is):"]
    lines += ["  %5.1f %%  %s" % (100.0 * n / total, f) for f, n in leaf.most_common(top)]
    return lines


def _short(frame):
    # "func (path/to/file.py:123)" -> "func (file.py:123)" keeping services/ and shared/
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("/services/", "/shared/", "/site-packages/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return "%s (%s)" % (name, where)


OWN = ("services/", "shared/", "booking/", "checkin/", "entry/")


def _own(frame):
    """Project code (py-spy prints paths relative to their sys.path entry)."""
    where = frame.partition(" (")[2]
    return where.startswith(OWN) or any("/" + p in where for p in OWN)
