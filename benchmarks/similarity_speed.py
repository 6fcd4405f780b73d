"""Similarity speed: comparator pairs per second for 60 x 60 similarity matrices, one by one and batched.

Times the video comparator + chamfer on random 60 x 60 matrices (60 segments = a 1-minute video at
the 1-s segment step), and the full model from embedded 2528-d segments (similarity matrix included),
on the CPU with ``--threads`` threads and on CUDA when there is one. Targets: >= 1,000
pairs/s batched on 2 CPU cores, >= 50,000 pairs/s on a GPU.

    .venv/bin/python benchmarks/similarity_speed.py [--threads 2] [--batch-size 64] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from ausil_lite.descriptors.whitening import PCAWhitening
from ausil_lite.similarity import AuSiL, VideoComparator, chamfer_similarity, pooled_size

SEGMENTS = 60
DIM = 2528


def pairs_per_second(step, pairs_per_step: int, seconds: float, sync) -> tuple[float, float]:
    """Run ``step`` for about ``seconds`` after a warm-up call: pairs per wall second and per CPU second.

    The CPU-second rate (process time, all threads) shows what the code does when other work shares
    the cores; on an idle machine wall rate ~= CPU rate x threads.
    """
    step()
    sync()
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        step()
        done += pairs_per_step
    sync()
    return done / (time.perf_counter() - start), done / (time.process_time() - cpu)


@torch.inference_mode()
def measure(device: torch.device, batch_size: int, seconds: float) -> list[tuple[str, tuple[float, float]]]:
    torch.manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    comparator = VideoComparator().to(device).eval()
    maps = torch.rand(batch_size, SEGMENTS, SEGMENTS, device=device) * 2 - 1
    full = torch.full((batch_size,), SEGMENTS, device=device)

    def one_by_one():
        for i in range(min(batch_size, 64)):
            chamfer_similarity(comparator(maps[i : i + 1]))

    def batched():
        chamfer_similarity(comparator(maps), pooled_size(full), pooled_size(full))

    identity = PCAWhitening(torch.zeros(DIM), torch.eye(DIM))
    model = AuSiL(identity).to(device).eval()
    query = model.prepare(np.random.default_rng(0).random((SEGMENTS, DIM), dtype=np.float32), "query")
    candidates = [model.prepare(x) for x in np.random.default_rng(1).random((batch_size, SEGMENTS, DIM), dtype=np.float32)]

    def model_batched():
        model.score_many(query, candidates)

    return [
        ("comparator + chamfer, one by one", pairs_per_second(one_by_one, min(batch_size, 64), seconds, sync)),
        (f"comparator + chamfer, batches of {batch_size}", pairs_per_second(batched, batch_size, seconds, sync)),
        (f"full model from embeddings, batches of {batch_size}", pairs_per_second(model_batched, batch_size, seconds, sync)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per batch on the CPU (GPU: 64x)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    devices = [(torch.device("cpu"), args.batch_size, f"CPU, {args.threads} threads")]
    if torch.cuda.is_available():
        devices.append((torch.device("cuda"), args.batch_size * 64, torch.cuda.get_device_name()))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"similarity speed, {SEGMENTS} x {SEGMENTS} similarity matrices (torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {load})")
    print(f"  {'device':28s} {'what':52s} {'pairs/s':>10s} {'per CPU-s':>10s}")
    for device, batch, label in devices:
        for name, (wall, cpu) in measure(device, batch, args.seconds):
            print(f"  {label:28s} {name:52s} {wall:10,.0f} {cpu:10,.0f}")


if __name__ == "__main__":
    main()
