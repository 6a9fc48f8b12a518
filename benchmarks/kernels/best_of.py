#!/usr/bin/python3
"""Best-of-repetitions throughput per benchmark from Google Benchmark JSON: logits bytes per CPU-second
(robust when the host is shared: time slices given to other processes are not counted) and per
wall-second. Usage: best_of.py results.json [more.json ...]"""
import json,collections,sys
best=collections.defaultdict(float); wall=collections.defaultdict(float)
for p in sys.argv[1:]:
    d=json.load(open(p))
    for b in d['benchmarks']:
        if b.get('run_type')=='aggregate': continue
        scale={"ms":1e-3,"us":1e-6,"ns":1e-9}[b['time_unit']]
        byts=b['bytes_per_second']*b['real_time']*scale
        best[b['run_name']]=max(best[b['run_name']], byts/(b['cpu_time']*scale)/1e9)
        wall[b['run_name']]=max(wall[b['run_name']], b['bytes_per_second']/1e9)
for k in best: print(f"{k.replace('/real_time',''):52s} cpu {best[k]:6.2f}  wall {wall[k]:6.2f} GB/s")
