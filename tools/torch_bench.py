#!/usr/bin/env python3
"""PyTorch side of `unfold bench`: the same configurations, the same JSON lines.

    python3 tools/torch_bench.py [--threads N] [--config NAME ...] [--mode M ...] [--seconds S]

Train = forward + backward of loss = sum(out * dout) (input needs no gradient, no optimizer);
infer = forward under torch.inference_mode(); stream = nn.LSTMCell / nn.GRUCell, batch 1, one
step at a time. T = 100, input size = hidden size, float32, zero initial state, median of
repeated runs after a warm-up.
"""
import argparse
import json
import os
import statistics
import time

import torch

STEPS = 100
CONFIGS = [
    ("lstm-h64-b1", "lstm", 64, 1, 1, False, False),
    ("lstm-h64-b32", "lstm", 64, 32, 1, False, False),
    ("lstm-h256-b32", "lstm", 256, 32, 1, False, False),
    ("lstm-h256-b64", "lstm", 256, 64, 1, False, False),
    ("lstm-h512-b64", "lstm", 512, 64, 1, False, False),
    ("gru-h256-b32", "gru", 256, 32, 1, False, False),
    ("rnn-h256-b32", "rnn", 256, 32, 1, False, False),
    ("lstm2-h256-b32", "lstm", 256, 32, 2, False, False),
    ("bilstm-h256-b32", "lstm", 256, 32, 1, True, False),
    ("lstm-h64-stream", "lstm", 64, 1, 1, False, True),
    ("lstm-h256-stream", "lstm", 256, 1, 1, False, True),
    ("gru-h64-stream", "gru", 64, 1, 1, False, True),
    ("gru-h256-stream", "gru", 256, 1, 1, False, True),
]


def median_time(f, min_reps, min_secs):
    f()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_secs:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
        if len(times) >= 10000:
            break
    return statistics.median(times)


def module(kind, h, layers, bidir):
    if kind == "lstm":
        return torch.nn.LSTM(h, h, num_layers=layers, bidirectional=bidir)
    if kind == "gru":
        return torch.nn.GRU(h, h, num_layers=layers, bidirectional=bidir)
    return torch.nn.RNN(h, h, num_layers=layers, bidirectional=bidir)


def run(cfg, mode, secs, threads):
    name, kind, h, b, layers, bidir, stream = cfg
    torch.manual_seed(0)
    x = torch.rand(STEPS, b, h) * 2 - 1
    if mode == "stream":
        cell = torch.nn.LSTMCell(h, h) if kind == "lstm" else torch.nn.GRUCell(h, h)
        xs = [x[t] for t in range(STEPS)]

        def f():
            with torch.inference_mode():
                hx = torch.zeros(b, h)
                cx = torch.zeros(b, h)
                for t in range(STEPS):
                    if kind == "lstm":
                        hx, cx = cell(xs[t], (hx, cx))
                    else:
                        hx = cell(xs[t], hx)

        per_call = median_time(f, 20, secs)
    else:
        m = module(kind, h, layers, bidir)
        d = 2 if bidir else 1
        dout = torch.rand(STEPS, b, d * h) * 2 - 1
        if mode == "train":

            def f():
                out, _ = m(x)
                (out * dout).sum().backward()

        else:

            def f():
                with torch.inference_mode():
                    m(x)

        per_call = median_time(f, 5, secs)
    per_step = per_call / STEPS
    return {
        "config": name,
        "mode": mode,
        "tokens_per_s": round(b / per_step, 1),
        "us_per_step": round(per_step * 1e6, 3),
        "threads": threads,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--mode", action="append", default=[])
    ap.add_argument("--seconds", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for cfg in CONFIGS:
        if a.config and cfg[0] not in a.config:
            continue
        modes = ["stream"] if cfg[6] else ["train", "infer"]
        for mode in modes:
            if a.mode and mode not in a.mode:
                continue
            print(json.dumps(run(cfg, mode, a.seconds, a.threads)), flush=True)


if __name__ == "__main__":
    main()
