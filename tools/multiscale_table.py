#!/usr/bin/env python3
"""Cell x task table for the deep and multiple-time-scale cells (docs/multiscale.md).

Runs `unfold train` for every cell on every task with the same budget (hidden units, updates,
batch, learning rate: the task's defaults unless set here, the same for every cell), one
process at a time, and prints a markdown table of the test metric, the updates and the wall
time, read from each run's summary.json. Nothing is tuned per cell.

    python3 tools/multiscale_table.py --unfold target/release/unfold --out runs/multiscale \
        [--data ../shared/data] [--seeds 1,2,3] [--only adding] [--cell lstm]
"""

import argparse
import json
import os
import subprocess
import sys
import time

CELLS = [
    ("rnn (tanh)", ["--model", "rnn"]),
    ("lstm", ["--model", "lstm"]),
    ("gru", ["--model", "gru"]),
    ("leaky (learned, 1..1/50)", ["--model", "leaky"]),
    ("clockwork (1, 2, ..., 128)", ["--model", "clockwork"]),
    ("delay (1, 4)", ["--model", "delay", "--delays", "1,4"]),
    ("DT-RNN (depth 2)", ["--model", "deep", "--depth", "2", "--shortcut", "false"]),
    ("DT(S)-RNN (depth 2)", ["--model", "deep", "--depth", "2", "--shortcut", "true"]),
    ("TDNN (8 taps, dilation 4)", ["--model", "tdnn", "--taps", "8", "--dilation", "4"]),
]


def tasks(data):
    gp = os.path.join(data, "classification", "GunPoint")
    return [
        ("adding T=50", ["--task", "adding", "--length", "50", "--steps", "6000",
                         "--hidden", "64", "--lr", "0.01"]),
        ("adding T=100", ["--task", "adding", "--length", "100", "--steps", "6000",
                          "--hidden", "64", "--lr", "0.01"]),
        ("copy, delay 20", ["--task", "copy", "--length", "20", "--steps", "4000",
                            "--hidden", "64", "--lr", "5e-3"]),
        ("period (pulses 16-48 apart)", ["--task", "period", "--steps", "4000",
                                         "--hidden", "64"]),
        ("mackey-glass", ["--task", "mackey-glass", "--steps", "2000", "--hidden", "32"]),
        ("sines", ["--task", "sines", "--steps", "2000", "--hidden", "32"]),
        ("GunPoint (150 steps)", ["--ts", os.path.join(gp, "GunPoint_TRAIN.ts"),
                                  "--test", os.path.join(gp, "GunPoint_TEST.ts"),
                                  "--steps", "1500", "--hidden", "64"]),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unfold", default="target/release/unfold")
    ap.add_argument("--out", default="runs/multiscale")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seeds", default="1", help="seeds, e.g. 1 or 1,2,3")
    ap.add_argument("--only", default=None, help="run only tasks whose name starts with this")
    ap.add_argument("--cell", default=None, help="run only cells whose name starts with this")
    a = ap.parse_args()
    rows = []
    for tname, targs in tasks(a.data):
        if a.only and not tname.startswith(a.only):
            continue
        for cname, cargs in CELLS:
            if a.cell and not cname.startswith(a.cell):
                continue
            for seed in [int(v) for v in a.seeds.split(",")]:
                tag = f"{tname}-{cname}-{seed}".replace(" ", "_").replace("/", "_")
                for ch in "(),=":
                    tag = tag.replace(ch, "")
                out = os.path.join(a.out, tag)
                cmd = [a.unfold, "train", *targs, *cargs, "--seed", str(seed), "--out", out,
                       "--quiet"]
                t0 = time.time()
                r = subprocess.run(cmd, capture_output=True, text=True)
                wall = time.time() - t0
                if r.returncode != 0:
                    print(f"FAILED {' '.join(cmd)}: {r.stderr.strip()}", file=sys.stderr)
                    continue
                with open(os.path.join(out, "summary.json")) as f:
                    s = json.load(f)
                row = dict(task=tname, cell=cname, seed=seed, metric=s["metric"],
                           value=s["value"], passed=s["passed"], steps=s["steps"],
                           seconds=s["train_seconds"], wall=wall,
                           command=" ".join(cmd[1:]))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| task | cell | seed | result | passed | updates | train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['cell']} | {r['seed']} | {r['value']:.3f} | "
              f"{'yes' if r['passed'] else 'no' if r['passed'] is False else '-'} | "
              f"{r['steps']} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
