"""Peak memory of feature extraction against the length of the video: 10 minutes, 1 hour and 3 hours.

Each input is made on the fly, block by block so this process never holds it: a synthetic signal
(tones that change every second over quiet noise, with silent gaps) encoded as AAC at 48 kHz in an
m4a file, so decoding a compressed stream and resampling to 44.1 kHz are both exercised. Each input
is then extracted into a fresh feature store in its own process, as ``ausil-lite extract`` does it on a
CPU when told nothing (the released backbone at its default precision, one extraction worker a usable core:
:mod:`ausil_lite.descriptors.workers`), and that process reports its peak resident memory (VmHWM), the largest
of its workers' (polled), and the peak of the whole process tree's proportional memory (Pss, polled: shared
pages counted once), which is what extraction holds in all.

    .venv/bin/python benchmarks/long_video_memory.py [--minutes 10 60 180] [--threads 2] [--workers N] [--backbone random]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

from ausil_lite.descriptors.precision import default_precision
from ausil_lite.descriptors.workers import default_workers

RATE = 48_000
"""Rate of the encoded inputs, in Hz: the common rate of video soundtracks, not the analysis rate."""


def write_long_input(path: Path, seconds: int, seed: int = 0) -> Path:
    """Encode ``seconds`` of a synthetic signal into an AAC m4a at 48 kHz, one second at a time."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=RATE, layout="mono", options={"aac_coder": "fast"})
        for second in range(seconds):
            freq = rng.uniform(100.0, 8000.0)
            block = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(RATE)
            if second % 97 == 0:
                block[: RATE // 2] = 0.0  # a gap, so the 80 dB floor is reached
            frame = av.AudioFrame.from_ndarray(block.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = RATE
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _proc_mb(pid: int | str, file: str, field: str) -> float:
    """The ``field`` line (kB) of ``/proc/<pid>/<file>``, in MB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory of process ``pid``, in MB (VmHWM of its /proc status)."""
    return _proc_mb(pid, "status", "VmHWM")


def pss_mb(pid: int | str = "self") -> float:
    """Proportional set size of process ``pid`` now, in MB: its private memory plus its share of pages it shares
    (the forkserver's children share their parent's pages), so the sum over processes counts each page once."""
    return _proc_mb(pid, "smaps_rollup", "Pss")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: the extraction workers sit under the forkserver, not under this process."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


class WorkerPeaks(threading.Thread):
    """Polls, four times a second while they live, the peak memory of each of this process's descendants and
    the proportional memory of the whole tree (this process, the forkserver and the workers) together."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, float] = {}  # pid -> peak resident MB
        self.total_mb = 0.0  # largest polled sum of Pss over the tree
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.25):
            tree = descendants(os.getpid())
            for pid in tree:
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), vm_hwm_mb(pid))
            self.total_mb = max(self.total_mb, pss_mb() + sum(pss_mb(pid) for pid in tree))

    @property
    def largest_mb(self) -> float:
        return max(self.peaks.values(), default=0.0)


def child(path: str, threads: int, n_workers: int, backbone: str) -> None:
    """Extract ``path`` into a fresh store as the extract command does; print one JSON line."""
    import torch

    from ausil_lite.descriptors.extraction import ExtractionConfig
    from ausil_lite.descriptors.store import FeatureStore, extract_videos

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(Path(tmp) / "store")
        config = ExtractionConfig(backbone=backbone, device="cpu", precision=default_precision(backbone, "cpu"))
        workers = WorkerPeaks()
        workers.start()
        start = time.perf_counter()
        summary = extract_videos([("long", path)], store, config, workers=n_workers,
                                 progress=False)
        seconds = time.perf_counter() - start
        workers.done.set()
        workers.join()
        if summary.failed:
            raise SystemExit(f"extraction failed: {summary.failed}")
        segments = len(store.load("long"))
    print(json.dumps({"seconds": seconds, "segments": segments, "main_mb": vm_hwm_mb(), "worker_mb": workers.largest_mb,
                      "total_mb": workers.total_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, nargs="+", default=[10, 60, 180])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="extraction worker processes (default: as `ausil-lite extract`, one a usable core)")
    parser.add_argument("--backbone", default="released", choices=["released", "random"],
                        help="the released backbone (at its default precision) or the seeded random one (float32)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.threads, args.workers, args.backbone)
        return
    print(f"torch threads: {args.threads}; input: synthetic AAC 48 kHz m4a; backbone: {args.backbone} at "
          f"{default_precision(args.backbone, 'cpu')}, CPU; {args.workers} extraction worker(s)")
    print(f"{'input':>8s} {'make (s)':>9s} {'extract (s)':>12s} {'segments':>9s} {'main peak (MB)':>15s} "
          f"{'worker peak (MB)':>17s} {'all together (MB)':>18s}")
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            path = write_long_input(Path(tmp) / f"long-{minutes}min.m4a", minutes * 60)
            made = time.perf_counter() - start
            run = subprocess.run([sys.executable, __file__, "--child", str(path), "--threads", str(args.threads),
                                  "--workers", str(args.workers), "--backbone", args.backbone],
                                 capture_output=True, text=True, env=dict(os.environ))
            if run.returncode != 0:
                raise SystemExit(f"{minutes} min: the extraction process failed:\n{run.stderr[-3000:]}")
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{minutes:>4d} min {made:9.1f} {r['seconds']:12.1f} {r['segments']:9d} {r['main_mb']:15.0f} "
                  f"{r['worker_mb']:17.0f} {r['total_mb']:18.0f}", flush=True)


if __name__ == "__main__":
    main()
