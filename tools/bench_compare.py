#!/usr/bin/env python3
"""unfold and PyTorch side by side, in one run, on one machine, at one thread count.

    python3 tools/bench_compare.py [--threads 2] [--seconds 1] [--rounds 1] [--config NAME]...

For each configuration it runs `unfold bench --json --config NAME` and then
`tools/torch_bench.py --config NAME` (alternating, so drift of the shared machine hits both),
then prints a Markdown table with the ratios (unfold / PyTorch throughput; for streaming,
PyTorch latency / unfold latency). Finally it measures the peak resident memory of a process
training lstm-h512-b64 in each. Build unfold first: `cargo build --release`.

With `--baseline OTHER_UNFOLD` (an unfold binary built from an earlier commit) each round runs
that binary too, in the same alternation, and a second table compares the two unfolds (and
each with PyTorch): how a change moved every configuration, measured side by side.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = [
    "lstm-h64-b1", "lstm-h64-b32", "lstm-h256-b32", "lstm-h256-b64", "lstm-h512-b64",
    "gru-h256-b32", "rnn-h256-b32", "lstm2-h256-b32", "bilstm-h256-b32",
    "lstm-h64-stream", "lstm-h256-stream", "gru-h64-stream", "gru-h256-stream",
]


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]


def peak_rss_mib(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{cmd} failed")
    return ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--unfold", default="target/release/unfold")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--baseline", help="an earlier unfold binary to measure alongside")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternating unfold/PyTorch pairs per configuration; the table shows "
                         "the median of each side and the median of the pairs' ratios")
    a = ap.parse_args()
    names = a.config or NAMES
    uf = [a.unfold, "--threads", str(a.threads), "bench", "--json", "--seconds", str(a.seconds)]
    tb = [a.python, os.path.join(HERE, "torch_bench.py"), "--threads", str(a.threads),
          "--seconds", str(a.seconds)]
    base = [a.baseline] + uf[1:] if a.baseline else None
    rows, base_rows = [], []
    for n in names:
        # mode -> list over rounds of (unfold, PyTorch) results
        pairs, trios = {}, {}
        for _ in range(a.rounds):
            b = {r["mode"]: r for r in run_json(base + ["--config", n])} if base else {}
            u = run_json(uf + ["--config", n])
            t = {r["mode"]: r for r in run_json(tb + ["--config", n])}
            for r in u:
                pairs.setdefault(r["mode"], []).append((r, t.get(r["mode"])))
                if r["mode"] in b:
                    trios.setdefault(r["mode"], []).append((r, b[r["mode"]], t.get(r["mode"])))
        for mode, ps in pairs.items():
            rows.append((n, mode, ps))
        for mode, ps in trios.items():
            base_rows.append((n, mode, ps))
    med = statistics.median
    print(f"| config | mode | unfold tokens/s | PyTorch tokens/s | unfold us/step | "
          f"PyTorch us/step | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, mode, ps in rows:
        if any(t is None for _, t in ps):
            continue
        ratio = med([u["tokens_per_s"] / t["tokens_per_s"] for u, t in ps])
        label = "x faster" if mode != "stream" else "x lower latency"
        print(f"| {n} | {mode} | {med([u['tokens_per_s'] for u, _ in ps]):.0f} | "
              f"{med([t['tokens_per_s'] for _, t in ps]):.0f} | "
              f"{med([u['us_per_step'] for u, _ in ps]):.2f} | "
              f"{med([t['us_per_step'] for _, t in ps]):.2f} | {ratio:.2f} {label} |")
    if base_rows:
        print(f"\n| config | mode | unfold tokens/s | baseline tokens/s | unfold / baseline | "
              f"unfold / PyTorch | baseline / PyTorch |")
        print("|---|---|---|---|---|---|---|")
        for n, mode, ps in base_rows:
            if any(t is None for _, _, t in ps):
                continue
            print(f"| {n} | {mode} | {med([u['tokens_per_s'] for u, _, _ in ps]):.0f} | "
                  f"{med([b['tokens_per_s'] for _, b, _ in ps]):.0f} | "
                  f"{med([u['tokens_per_s'] / b['tokens_per_s'] for u, b, _ in ps]):.3f} | "
                  f"{med([u['tokens_per_s'] / t['tokens_per_s'] for u, _, t in ps]):.2f} | "
                  f"{med([b['tokens_per_s'] / t['tokens_per_s'] for _, b, t in ps]):.2f} |")
    mem_u = peak_rss_mib(uf + ["--config", "lstm-h512-b64", "--mode", "train"])
    mem_t = peak_rss_mib(tb + ["--config", "lstm-h512-b64", "--mode", "train"])
    print(f"\nPeak resident memory, lstm-h512-b64 train, {a.threads} threads: "
          f"unfold {mem_u:.0f} MiB, PyTorch {mem_t:.0f} MiB")


if __name__ == "__main__":
    main()
