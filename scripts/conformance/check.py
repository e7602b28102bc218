"""Figures and verdicts of a conformance run, from the tap's log and hanbrief's run reports.

    python3 check.py TAP_LOG RPM TPM NAME=REPORT.json [NAME=REPORT.json …]

For each model (NAME, as the proxy knows it): articles written; requests, 429s and other
errors as they crossed the wire; and *early retries*: requests refused with 429 in a rate-limit
window that had already refused one. LiteLLM's usage-based routing counts requests and tokens
per calendar minute (UTC), so a client that comes back within the minute that refused it is
refused again: that is a retry before the limits allowed it. A *storm* is more 429s than one
per limit window that saw any. Exits 1 if an article is not written, a retry came early or
429s stormed.
"""

import json
import sys
from collections import defaultdict

tap_log, rpm, tpm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = [arg.split("=", 1) for arg in sys.argv[4:]]
exchanges = defaultdict(list)
with open(tap_log, encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        if r.get("path", "").endswith("/chat/completions"):
            exchanges[r.get("model")].append(r)

failed = False
rows = []
for name, report_path in runs:
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    totals = report["totals"]
    calls = sorted(exchanges.get(name, []), key=lambda r: r["sent"])
    refused = [r for r in calls if r["status"] == 429]
    other = [r for r in calls if r["status"] not in (200, 429)]
    by_window = defaultdict(int)
    for r in refused:
        by_window[int(r["sent"] // 60)] += 1
    early = sum(n - 1 for n in by_window.values())
    storms = sum(1 for n in by_window.values() if n > 1)
    ok = [r for r in calls if r["status"] == 200]
    wall = report["elapsed_s"]
    tokens = sum((r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) for r in ok)
    busiest = defaultdict(lambda: [0, 0])
    for r in ok:
        w = busiest[int(r["sent"] // 60)]
        w[0] += 1
        w[1] += (r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0)
    peak_rpm = max((w[0] for w in busiest.values()), default=0)
    peak_tpm = max((w[1] for w in busiest.values()), default=0)
    written = totals["written"] + totals["unchanged"]
    verdict = "pass"
    problems = []
    if written != totals["articles"]:
        problems.append(f"{totals['articles'] - written} article(s) not written")
    if early:
        problems.append(f"{early} early retr{'y' if early == 1 else 'ies'}")
    if storms:
        problems.append(f"429s stormed in {storms} window(s)")
    if problems:
        verdict = "FAIL: " + "; ".join(problems)
        failed = True
    rows.append(
        f"| {name} | {written}/{totals['articles']} | {wall:.0f} | {len(calls)} | {len(refused)} "
        f"| {early} | {len(other)} | {peak_rpm} / {rpm} | {peak_tpm:,} / {tpm:,} | {tokens:,} | {verdict} |"
    )
    for r in other:
        print(f"conformance: {name}: HTTP {r['status']}: {r.get('error', '')[:160]}", file=sys.stderr)

print("| model (through LiteLLM) | articles written | wall s | requests | 429s | early retries "
      "| other errors | peak requests/min (limit) | peak tokens/min (limit) | tokens | verdict |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for row in rows:
    print(row)
sys.exit(1 if failed else 0)
