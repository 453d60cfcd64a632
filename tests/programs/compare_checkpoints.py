#!/usr/bin/env python3
"""Largest relative difference between the tensors of two safetensors checkpoints.

  compare_checkpoints.py A.safetensors B.safetensors [--with-optimizer] [--max REL]

For each float32 tensor (the optimizer's only with --with-optimizer): max |a - b| / max |b|, the
difference relative to the tensor's scale. Prints the worst; with --max, exits 1 when it exceeds
REL. Plain Python + numpy (the format is 8 bytes of header length, a JSON header, raw
little-endian data), so it needs no torch.
"""
import json
import struct
import sys

import numpy as np


def load(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for key, v in header.items():
        if key == '__metadata__' or v['dtype'] != 'F32':
            continue
        begin, end = v['data_offsets']
        out[key] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype='<f4').reshape(v['shape'])
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
if sorted(a) != sorted(b):
    print("the checkpoints hold different tensors:", sorted(set(a) ^ set(b)))
    sys.exit(1)
worst = (0.0, '')
for key in a:
    if 'num_batches' in key or (key.startswith('optimizer.') and '--with-optimizer' not in sys.argv):
        continue
    diff = np.abs(a[key].astype(np.float64) - b[key]).max() / max(np.abs(b[key]).max(), 1e-12)
    worst = max(worst, (diff, key))
print("max relative difference %.3g (%s)" % worst)
if '--max' in sys.argv and worst[0] > float(sys.argv[sys.argv.index('--max') + 1]):
    sys.exit(1)
