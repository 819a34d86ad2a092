#!/usr/bin/env python3
"""Echo state networks, unfold against reservoirpy 0.4.2, side by side on the same data.

Two workloads at the same reservoir sizes and settings (normal recurrent weights, 10 non-zeros
per row on average, spectral radius 1, input weights +-1 fully connected, no bias, leak rate 1,
a readout with a bias over the states, fixed ridge):

- mg: one-step prediction of a Mackey-Glass series (reservoirpy.datasets.mackey_glass, written
  to a CSV that unfold reads): create + fit (state harvesting after a warm-up, ridge solve),
  then run over the series.
- jv: JapaneseVowels classification from each sequence's last state (the .ts files of
  ../shared/data, standardised per channel with the training moments, written to CSVs that
  unfold reads): create + fit on the 270 training sequences, then classify the 370 test ones.

Each configuration is run `--repeats` times alternating the two libraries; the median of each
phase is printed. reservoirpy runs with workers=1 and workers=-1 (joblib over all cores) and
the faster is reported. Run from the repository root after
`cargo build --release --example reservoir_bench`:

    venv/bin/python tools/reservoir_bench.py [--units 1000] [--steps 10000] [--repeats 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import reservoirpy
from reservoirpy.datasets import mackey_glass
from reservoirpy.nodes import Reservoir, Ridge

BIN = "target/release/examples/reservoir_bench"


def rpy_model(units, ridge):
    res = Reservoir(
        units,
        lr=1.0,
        sr=1.0,
        rc_connectivity=10 / units,
        input_scaling=1.0,
        input_connectivity=1.0,
        seed=1,
    )
    return res, Ridge(ridge=ridge)


def rpy_mg(series, units, warmup, ridge, workers):
    x = series.reshape(-1, 1)
    t0 = time.perf_counter()
    res, ro = rpy_model(units, ridge)
    esn = res >> ro
    t1 = time.perf_counter()
    esn.fit(x[:-1], x[1:], warmup=warmup)
    t2 = time.perf_counter()
    res.reset()
    esn.run(x[:-1])
    t3 = time.perf_counter()
    return {"build": t1 - t0, "fit": t2 - t1, "run": t3 - t2}


def rpy_jv(train, test, units, ridge, workers):
    (ytr, xtr), (yte, xte) = train, test
    k = max(max(ytr), max(yte)) + 1
    onehot = np.eye(k)[ytr]
    t0 = time.perf_counter()
    res, ro = rpy_model(units, ridge)
    t1 = time.perf_counter()
    states = res.run(xtr, workers=workers)
    last = np.array([s[-1] for s in states])
    ro.fit(last, onehot)
    t2 = time.perf_counter()
    st = res.run(xte, workers=workers)
    pred = ro.run(np.array([s[-1] for s in st]))
    t3 = time.perf_counter()
    acc = float(np.mean(np.argmax(pred, axis=1) == np.array(yte)))
    return {"build": t1 - t0, "fit": t2 - t1, "run": t3 - t2, "accuracy": acc}


def unfold(args):
    out = subprocess.run([BIN] + [str(a) for a in args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def read_ts(path):
    labels, series, classes, data = [], [], [], False
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not data:
            if line.lower().startswith("@classlabel"):
                parts = line.split()
                if len(parts) > 1 and parts[1].lower() == "true":
                    classes = parts[2:]
            if line.lower().startswith("@data"):
                data = True
            continue
        *chans, label = line.split(":")
        cols = [[float(v) for v in c.split(",")] for c in chans]
        series.append(np.array(cols).T)
        labels.append(label.strip())
    return labels, series, classes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", default="../shared/data/classification/JapaneseVowels")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} missing: cargo build --release --example reservoir_bench")
    tmp = tempfile.mkdtemp()
    print(f"reservoirpy {reservoirpy.__version__}, numpy {np.__version__}, {os.cpu_count()} cores")

    series = mackey_glass(a.steps + 1)
    mg_csv = os.path.join(tmp, "mg.csv")
    np.savetxt(mg_csv, series.reshape(-1), fmt="%.17g")

    ltr, xtr, classes = read_ts(os.path.join(a.data, "JapaneseVowels_TRAIN.ts"))
    lte, xte, _ = read_ts(os.path.join(a.data, "JapaneseVowels_TEST.ts"))
    classes = classes or sorted(set(ltr))
    allx = np.concatenate(xtr)
    mean, std = allx.mean(0), allx.std(0) + 1e-12
    xtr = [(x - mean) / std for x in xtr]
    xte = [(x - mean) / std for x in xte]
    ytr = [classes.index(l) for l in ltr]
    yte = [classes.index(l) for l in lte]

    def write(path, ys, xs):
        with open(path, "w") as f:
            for y, x in zip(ys, xs):
                f.write(",".join([str(y), str(len(x)), str(x.shape[1])] + [repr(float(v)) for v in x.reshape(-1)]) + "\n")

    jtr, jte = os.path.join(tmp, "jv_train.csv"), os.path.join(tmp, "jv_test.csv")
    write(jtr, ytr, xtr)
    write(jte, yte, xte)

    rows = []
    for name in ["mg", "jv"]:
        res = {"unfold": [], "rpy1": [], "rpyN": []}
        for _ in range(a.repeats):
            if name == "mg":
                res["unfold"].append(unfold(["mg", mg_csv, a.units, a.warmup, 1e-9]))
                res["rpy1"].append(rpy_mg(series, a.units, a.warmup, 1e-9, 1))
            else:
                res["unfold"].append(unfold(["jv", jtr, jte, a.units, 1e-2]))
                res["rpy1"].append(rpy_jv((ytr, xtr), (yte, xte), a.units, 1e-2, 1))
                res["rpyN"].append(rpy_jv((ytr, xtr), (yte, xte), a.units, 1e-2, -1))
        med = {}
        for lib, runs in res.items():
            if runs:
                med[lib] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                med[lib]["total"] = med[lib]["build"] + med[lib]["fit"] + med[lib]["run"]
        best = min((l for l in ("rpy1", "rpyN") if l in med), key=lambda l: med[l]["total"])
        rows.append((name, med["unfold"], med[best], best))

    print()
    print(f"| workload ({a.units} units) | library | create | fit | run | total | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, u, r, best in rows:
        label = {"mg": f"Mackey-Glass, {a.steps} steps", "jv": "JapaneseVowels, 270 + 370 seqs"}[name]
        extra_u = f" (acc {u['accuracy']:.3f})" if "accuracy" in u else ""
        extra_r = f" (acc {r['accuracy']:.3f})" if "accuracy" in r else ""
        wk = "workers=1" if best == "rpy1" else "workers=-1"
        print(f"| {label} | unfold{extra_u} | {u['build']:.3f} s | {u['fit']:.3f} s | {u['run']:.3f} s | {u['total']:.3f} s | {r['total'] / u['total']:.1f}x |")
        print(f"| | reservoirpy {wk}{extra_r} | {r['build']:.3f} s | {r['fit']:.3f} s | {r['run']:.3f} s | {r['total']:.3f} s | 1 |")


if __name__ == "__main__":
    main()
