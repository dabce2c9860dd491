#!/usr/bin/env python3
"""Polls /healthz every 10 ms until SIGTERM; writes the latencies (ms) to a file."""
import sys, time, urllib.request, signal
base = sys.argv[1]; out = sys.argv[2]
lat = []
running = True
def stop(*a):
    global running; running = False
signal.signal(signal.SIGTERM, stop)
while running:
    t = time.perf_counter()
    try: urllib.request.urlopen(base + '/healthz', timeout=10).read()
    except Exception: pass
    lat.append((time.perf_counter() - t) * 1000); time.sleep(0.01)
open(out, 'w').write('\n'.join(f'{x:.2f}' for x in lat))
