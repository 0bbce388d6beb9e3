#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py - writes the seed corpora corpus_api/ and
corpus_datadir/ (a handful of small files each).  The byte layout is the
one fuzz_api.c and fuzz_datadir.c decode; rerun after changing it."""
import os

here = os.path.dirname(os.path.abspath(__file__))

NOW60 = [7, 0]             # pick_time: base (now + 60 / now + 600)
I8 = [0] * 8               # an ignored 8-byte field

def put(k, v=0, f=0x04, t=NOW60, fam=0):
    return [0, k, v, f] + t + [fam] + I8

def take(k): return [2, k, 3]
def get(k): return [1, k, 1]
def fin(k): return [3, k]
def rins(k, fam=0, v=0, f=0x08, t=NOW60): return [7, k, v, f, fam] + t + [1]
def rget(k): return [8, k, 1]
def rcons(k): return [9, k, 1]
def rsucc(k, sel=5): return [10, k, sel]
def rrot(p, c, fam=0, pay=100): return [11, p, c, 0, 0, fam] + NOW60 + [2, pay, 1]
def rrev(fam): return [12, fam]
def issue(ttl=10): return [13, ttl, 0]
def valid(n=0): return [14, n]
def accept(n=0, ttl=10): return [15, n, ttl]
def replay(k, ttl=20): return [16, k, ttl]
def arec(fam, k, t=NOW60): return [4, fam, k] + t
def arev(fam): return [5, fam]
def arevd(k): return [6, k]
def sweep(): return [17, 1]
def clock(sel, d=0, extra=()): return [18, sel, d] + list(extra)
STATS, CHECKPOINT, REOPEN_OR_HELPERS, OPTIONS, NULLS = [19], [20], [21], [22], [23]

api = {
    "codes": [0x20, 0x3f, 0x10, 0] + put(0) + get(0) + take(0) + take(0) + fin(0) + take(0)
             + put(0) + put(1, v=5) + STATS + clock(15, 0, [0xe8, 0x04]) + sweep() + STATS,
    "refresh": [0x20, 0x3f, 0x10, 0] + rins(0) + rcons(0) + rsucc(0) + rget(0) + rrot(0, 1)
               + rins(2) + rrot(2, 3) + rget(3) + rrev(0) + rget(3) + rins(4) + STATS,
    "nonce_replay_access": [0x20, 0x3f, 0x10, 0] + issue() + valid() + accept() + accept()
               + replay(1) + replay(1) + arec(1, 2) + arev(1) + arevd(2) + clock(2) + arevd(2)
               + sweep() + STATS + REOPEN_OR_HELPERS + [3, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5]
               + NULLS + OPTIONS + [0, 4, 0] + STATS,
    "dir_reopen": [0x2f, 0x3f, 0x10, 0] + put(0) + take(0) + fin(0) + rins(0) + rrot(0, 1)
               + issue() + replay(3) + CHECKPOINT + put(2) + rcons(1) + rsucc(1, 9)
               + REOPEN_OR_HELPERS + STATS + take(0) + rget(0) + rget(1) + accept() + replay(3),
    "clock_ends": [0x20, 0x3f, 0x10, 1, 0, 0] + put(0, t=[2, 0]) + issue(180) + replay(0, 180)
               + rins(0, t=[2, 0]) + arec(0, 1, t=[2, 0]) + rrev(1) + sweep() + clock(2) + sweep()
               + clock(0) + sweep() + accept(0, 180) + STATS,
}
for name, b in api.items():
    with open(os.path.join(here, "corpus_api", name), "wb") as f:
        f.write(bytes(b))

# fuzz_datadir: [golden A/B, number of mutations, mutations...].  Golden A's
# files by name: CHECKPOINT, FORMAT, log-..02, log-..03, snap-..-0000,
# snap-..-0001; golden B's: FORMAT, log-..01.
datadir = {
    "clean_a": [0, 0],
    "clean_b": [1, 0],
    "torn_tail": [1, 2, 3, 1, 40, 3] + [0x55] * 200 + [1, 1, 0xa0, 0x02, 0, 0],
    "record_resealed": [0, 2, 6, 2, 1, 5, 3, 7, 1, 0, 0, 0x40, 0, 0, 0, 0],
    "checkpoint_start": [0, 1, 9, 0, 1, 1],
    "fifo_segment": [0, 1, 19, 0, 0, 0],
    "foreign_snapshot": [0, 1, 12, 4, 4, 1],
    # Regression (fixed in b6e4adb): golden B's empty log-..02 copied to
    # log-ffffffffffffffff made the next segment number wrap to 0.
    "regress-segment-number-wrap": [1, 1, 15, 2, 8],
}
for name, b in datadir.items():
    with open(os.path.join(here, "corpus_datadir", name), "wb") as f:
        f.write(bytes(b))
