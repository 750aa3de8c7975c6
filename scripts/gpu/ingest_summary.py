"""The console summary of a `bench ingest` result (scripts/gpu/ingest.sh, fp8.sh): one line per size and variant.

    python3 scripts/gpu/ingest_summary.py $OUT/ingest/ingest.json
"""
import json
import sys

r = json.load(open(sys.argv[1]))
print(r["device"], "| vision attention:", r.get("vision_attention"), "| partial:", r.get("partial"))
if r.get("prefill_linears"):
    print("prefill linears:", r["prefill_linears"])
print(f"{'tokens':>7} {'variant':<16} {'TTFT s':>8} {'prep':>7} {'vision':>7} {'prefill':>8} {'1st tok':>7} {'peak GiB':>8}")
for x in r["results"]:
    if "error" in x:
        print(f"{x['tokens']:>7} {x['variant']:<16} error: {x['error']}")
        continue
    s = x["stages_s"]
    peak = (x["peak_allocated_bytes"] or 0) / 2**30
    print(f"{x['tokens']:>7} {x['variant']:<16} {x['ttft_s']:>8} {s['preprocess']:>7} {s['vision']:>7} "
          f"{s['prefill']:>8} {s['first_token']:>7} {peak:>8.2f}")
print("acceptance:", r.get("acceptance"))
for e in r.get("e2e", []):
    if "error" in e:
        print("e2e error:", e["error"])
        continue
    print(f"e2e {e['mode']}: TTFT {e['ttft_s']} s, {e['frames']} frames {e['frame_size']}, {e['visual_tokens']} tokens; "
          f"decode ends {e['decode_end_s']} s, overlapped with GPU {e['decode_overlapped_with_device_s']} s; "
          f"busy {e['busy_s']}")
