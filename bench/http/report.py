"""Prints bench/http/run's results: one row per target (rate, p50, p99, unexpected answers), then the ratios
issue 19 sets targets for, each marked met or missed.

argv: RESULTS_FILE RSS_KB RAW_ES256_SIGNS_PER_S CONNECTIONS SECONDS
"""
import json
import sys

path, rss_kb, raw_sign, connections, seconds = sys.argv[1], int(sys.argv[2] or 0), float(sys.argv[3] or 0), sys.argv[4], sys.argv[5]
rows = {}
for line in open(path):
    name, _, payload = line.strip().partition(" ")
    rows[name] = json.loads(payload)

print(f"\nwrk, {connections} connections, {seconds} s per target, loopback, release build")
print(f"{'target':<26}{'req/s':>10}{'done/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'bad':>6}")
for name, row in rows.items():
    done = row["completed"] / row["seconds"] if row["completed"] else row["rate"]
    bad = row["unexpected"] + row["http_errors"] + row["socket_errors"]
    print(f"{name:<26}{row['rate']:>10.0f}{done:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{bad:>6}")
print(f"tessera serve RSS after the runs: {rss_kb / 1024:.0f} MiB")


def rate(name):
    row = rows.get(name)
    if not row:
        return None
    return row["completed"] / row["seconds"] if row["completed"] else row["rate"]


def ratio(label, numerator, denominator, target=None):
    if numerator is None or not denominator:
        return
    value = numerator / denominator
    verdict = "" if target is None else ("  met" if value >= target else f"  MISSED (target {target})")
    print(f"{label:<58}{value:>6.2f}{verdict}")


print()
token, peer_token = rate("client_credentials"), rate("peer_client_credentials")
ratio("/token client_credentials / peer /token", token, peer_token, 1.2)
ratio("/token client_credentials (after the peer) / peer /token", rate("client_credentials_again"), peer_token, 1.2)
ratio("/token client_credentials / same server /healthz", token, rate("healthz"), 0.7)
ratio("/healthz / peer /healthz", rate("healthz"), rate("peer_healthz"), 0.9)
ratio("/token client_credentials / one core's raw ES256 signs", token, raw_sign or None, 0.5)
ratio("refresh_token rotations / client_credentials", rate("refresh_token"), token, 0.5)
ratio("authorization_code exchanges / client_credentials", rate("authorization_code"), token)
ratio("resource server protected / unprotected", rate("resource_protected"), rate("resource_unprotected"), 0.8)
ratio("/token with warnings only logged / with the request line", rate("client_credentials_quiet"), token)
bad = sum(row["unexpected"] + row["http_errors"] + row["socket_errors"] for row in rows.values())
if bad:
    print(f"\n{bad} answers were not the expected ones: the figures above do not count")
    sys.exit(1)
