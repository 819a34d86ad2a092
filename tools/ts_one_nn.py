#!/usr/bin/env python3
"""1-nearest-neighbour (Euclidean) test accuracy on the shared classification sets, the
baseline docs/defaults.md compares `unfold train --ts` with. Series of unequal length are padded
to the longest, with zeros or by repeating the last value (both are printed; the better one is
the figure to beat). Needs numpy.

    python3 tools/ts_one_nn.py ../shared/data/classification
"""
import glob
import gzip
import sys

import numpy as np


def read_ts(path):
    """Series ([T, C] arrays) and labels of a sktime/UEA .ts file (gzip or not)."""
    opener = gzip.open if path.endswith(".gz") else open
    xs, ys, data = [], [], False
    for line in opener(path, "rt"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            data = True
            continue
        if line.startswith("@") or not data:
            continue
        parts = line.split(":")
        chans = [np.array([float(v) for v in c.split(",")]) for c in parts[:-1]]
        xs.append(np.stack(chans, 1))
        ys.append(parts[-1])
    return xs, np.array(ys)


def pad(xs, length, how):
    out = []
    for x in xs:
        fill = length - len(x)
        tail = np.zeros((fill, x.shape[1])) if how == "zero" else np.repeat(x[-1:], fill, 0)
        out.append(np.concatenate([x, tail]) if fill > 0 else x[:length])
    return np.stack(out).reshape(len(xs), -1)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/classification"
    for name in ["GunPoint", "Trace", "ACSF1", "JapaneseVowels", "BasicMotions"]:
        xtr, ytr = read_ts(glob.glob(f"{root}/{name}/{name}_TRAIN.ts*")[0])
        xte, yte = read_ts(glob.glob(f"{root}/{name}/{name}_TEST.ts*")[0])
        length = max(len(x) for x in xtr + xte)
        accs = []
        for how in ["zero", "last"]:
            a, b = pad(xtr, length, how), pad(xte, length, how)
            d = ((b[:, None, :] - a[None, :, :]) ** 2).sum(-1)
            accs.append(f"{how}-padded {(ytr[d.argmin(1)] == yte).mean():.3f}")
        print(f"{name}: {len(xtr)} train, {len(xte)} test, 1-NN Euclidean", ", ".join(accs))


if __name__ == "__main__":
    main()
