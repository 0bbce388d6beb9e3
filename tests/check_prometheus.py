#!/usr/bin/env python3
"""tests/check_prometheus.py - once_stats_prometheus's text, read by a real
Prometheus parser (prometheus_client, Debian's python3-prometheus-client).

    check_prometheus.py METRICS_DUMP ONCESTORE ONCESTORE_FILL

Runs tests/metrics_dump (a store written to under ONCE_SYNC_ALWAYS, with a
checkpoint) and `oncestore stats --prometheus` on a directory filled by
oncestore-fill, parses both, and checks: every family has HELP and a TYPE,
counters end in _total, the sync histogram's buckets are cumulative with le
ascending to +Inf equal to _count, and figures the stores must show.  TAP;
a missing parser is a failure, never a skip (CI installs it: tests/run.sh).
"""
import math
import os
import re
import subprocess
import sys
import tempfile

results = []


def check(name, fn):
    try:
        fn()
        results.append((True, name, ""))
    except Exception as e:  # noqa: BLE001 - any failure is the test's
        results.append((False, name, "%s: %s" % (type(e).__name__, e)))


def finish():
    print("1..%d" % len(results))
    for i, (ok, name, why) in enumerate(results, 1):
        print("%sok %d - %s" % ("" if ok else "not ", i, name))
        if why:
            for line in why.splitlines():
                print("# " + line)
    sys.exit(0 if all(r[0] for r in results) else 1)


try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    results.append((False, "the Prometheus parser is installed (python3-prometheus-client)", str(e)))
    finish()

if len(sys.argv) != 4:
    sys.exit("usage: check_prometheus.py METRICS_DUMP ONCESTORE ONCESTORE_FILL")
dump_exe, tool, fill = sys.argv[1:]
tmp = tempfile.mkdtemp(prefix="oncestore-prom-")


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def parse(text):
    """Families by name (the parser names a counter without _total)."""
    fams = {}
    for f in text_string_to_metric_families(text):
        assert f.name not in fams, "family %s twice" % f.name
        fams[f.name] = f
    return fams


def value(fams, family, sample=None, **labels):
    f = fams[family]
    for s in f.samples:
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError("no sample %s%s in %s" % (sample or family, labels, family))


def check_format(text, fams):
    """What the parser lets through: HELP and TYPE for every family, in
    that order, before its samples; counters named *_total; prefix."""
    helped, typed = set(), {}
    sample_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ", 3)[2])
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name in helped, "TYPE before HELP for " + name
            assert name not in typed, "two TYPE lines for " + name
            typed[name] = typ
            assert typ in ("counter", "gauge", "histogram"), line
            assert name.startswith("oncestore_"), name
            if typ == "counter":
                assert name.endswith("_total"), "counter %s without _total" % name
        else:
            m = sample_re.match(line)
            assert m, "not a sample line: %r" % line
            name = m.group(1)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in typed or (base in typed and typed[base] == "histogram"), \
                "sample %s before its TYPE" % name
            float(m.group(3))
    assert text.endswith("\n")
    for f in fams.values():
        assert f.documentation, "no HELP for " + f.name
        assert f.type != "unknown", "no TYPE for " + f.name


def check_histogram(fams, name):
    f = fams[name]
    assert f.type == "histogram", f.type
    buckets = [s for s in f.samples if s.name == name + "_bucket"]
    les = [float(s.labels["le"]) for s in buckets]
    assert les == sorted(les) and len(set(les)) == len(les), les
    assert math.isinf(les[-1]), "last bucket is le=%s, not +Inf" % les[-1]
    counts = [s.value for s in buckets]
    assert all(a <= b for a, b in zip(counts, counts[1:])), "not cumulative: %s" % counts
    count = value(fams, name, name + "_count")
    assert counts[-1] == count, "+Inf %s != _count %s" % (counts[-1], count)
    return count, value(fams, name, name + "_sum")


# ---- a store written to: tests/metrics_dump ----
dump_text = run([dump_exe, os.path.join(tmp, "dump")])
dump = {}


def dump_parses():
    dump.update(parse(dump_text))
    check_format(dump_text, dump)


check("metrics_dump's text parses, HELP and TYPE for every family, counters *_total", dump_parses)


def dump_families():
    want = {"oncestore_info": "gauge", "oncestore_entries": "gauge", "oncestore_heap_bytes": "gauge",
            "oncestore_capacity": "gauge", "oncestore_swept": "counter", "oncestore_operations": "counter",
            "oncestore_sweeps": "counter", "oncestore_log_bytes": "counter",
            "oncestore_log_records": "counter", "oncestore_log_syncs": "counter",
            "oncestore_log_sync_seconds": "histogram", "oncestore_log_sync_quantile_seconds": "gauge",
            "oncestore_log_write_failures": "counter", "oncestore_log_sync_failures": "counter",
            "oncestore_log_failed": "gauge", "oncestore_log_since_checkpoint_bytes": "gauge",
            "oncestore_checkpoints": "counter", "oncestore_checkpoint_failures": "counter",
            "oncestore_checkpoint_last_timestamp_seconds": "gauge",
            "oncestore_checkpoint_last_duration_seconds": "gauge",
            "oncestore_checkpoint_max_duration_seconds": "gauge",
            "oncestore_recovery_duration_seconds": "gauge", "oncestore_recovered_records": "counter",
            "oncestore_recovery_torn_bytes": "gauge", "oncestore_recovery_segments": "gauge",
            "oncestore_read_only": "gauge"}
    for name, typ in want.items():
        assert name in dump, "no family " + name
        assert dump[name].type == typ, "%s is %s, not %s" % (name, dump[name].type, typ)
    assert not any(n.startswith("oncestore_pg_") for n in dump), "pg families on the embedded engine"


check("metrics_dump: the families an operator alerts on, with their types", dump_families)


def dump_histogram():
    count, total = check_histogram(dump, "oncestore_log_sync_seconds")
    assert count == value(dump, "oncestore_log_syncs", "oncestore_log_syncs_total"), count
    assert count >= 29, "one sync per write under ONCE_SYNC_ALWAYS: %s" % count
    assert total > 0
    p50 = value(dump, "oncestore_log_sync_quantile_seconds", quantile="0.5")
    p99 = value(dump, "oncestore_log_sync_quantile_seconds", quantile="0.99")
    top = value(dump, "oncestore_log_sync_max_seconds")
    assert 0 < p50 <= p99 <= top, (p50, p99, top)


check("metrics_dump: the sync histogram is cumulative, ends at +Inf = _count = syncs", dump_histogram)


def dump_values():
    v = lambda *a, **k: value(dump, *a, **k)  # noqa: E731
    assert v("oncestore_entries", kind="code") == 12
    assert v("oncestore_entries", kind="refresh") == 3
    assert v("oncestore_entries", kind="refresh_family") == 2
    assert v("oncestore_entries", kind="access_family") == 1
    assert v("oncestore_capacity", kind="refresh_family") == 2 * v("oncestore_capacity", kind="refresh")
    assert v("oncestore_operations", op="code_take", status="OK") == 4
    assert v("oncestore_operations", op="code_take", status="SPENT") == 1
    assert v("oncestore_operations", op="refresh_get", status="OK") == 0  # OK rows always there
    assert v("oncestore_checkpoints") == 1
    assert v("oncestore_checkpoint_last_duration_seconds") > 0
    assert v("oncestore_checkpoint_last_timestamp_seconds") > 0
    assert v("oncestore_log_since_checkpoint_bytes") > 0  # nonces and replays after it
    assert v("oncestore_log_failed") == 0
    assert v("oncestore_info", engine="embedded") == 1


check("metrics_dump: entries, families, operations, checkpoint and log figures", dump_values)

# ---- the tool: oncestore stats --prometheus DIR ----
tool_dir = os.path.join(tmp, "filled")
stats = {}


def tool_parses():
    run([fill, tool_dir])
    text = run([tool, "stats", "--prometheus", tool_dir])
    stats.update(parse(text))
    check_format(text, stats)
    # A read-only open: the directory's entries and recovery, not the
    # tool's own (zero) log figures or its capacities.
    assert value(stats, "oncestore_read_only") == 1
    for absent in ("oncestore_log_sync_seconds", "oncestore_capacity", "oncestore_checkpoints"):
        assert absent not in stats, absent
    assert value(stats, "oncestore_entries", kind="code") == 6
    assert value(stats, "oncestore_entries", kind="refresh_family") >= 1
    assert value(stats, "oncestore_recovered_records", source="log") > 0
    assert value(stats, "oncestore_recovery_segments") >= 1


check("oncestore stats --prometheus on a filled directory parses, with its figures", tool_parses)


def tool_one_format():
    p = subprocess.run([tool, "stats", "--json", "--prometheus", tool_dir], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2, "exit %d" % p.returncode


check("oncestore stats --json --prometheus is a usage error", tool_one_format)

subprocess.run(["rm", "-rf", tmp])
finish()
