"""Floods a server with idle, slow-header and slow-body connections while a legitimate client keeps asking.

usage: connection_flood.py PORT ATTACKERS SECONDS
Prints one JSON object: how the legitimate requests fared and how soon the attackers' connections were closed.
"""
import json
import socket
import sys
import threading
import time

port, attackers, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
closed_after = []
lock = threading.Lock()


def attacker(kind):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=seconds + 10)
    except OSError:
        return  # refused or reset at accept: the cap at work
    opened = time.time()
    if kind == "header":
        trickle = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"a" * 10_000
    elif kind == "body":
        s.sendall(b"POST /token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n")
        trickle = b"a" * 10_000
    else:
        trickle = b""
    try:
        s.settimeout(0.25)
        index = 0
        while time.time() - opened < seconds + 5:
            if index < len(trickle):
                s.sendall(trickle[index:index + 1])
                index += 1
            try:
                if s.recv(4096) == b"":
                    break  # closed by the server
            except socket.timeout:
                pass
    except OSError:
        pass
    with lock:
        closed_after.append(time.time() - opened)
    s.close()


threads = [threading.Thread(target=attacker, args=(["idle", "header", "body"][i % 3],)) for i in range(attackers)]
for thread in threads:
    thread.start()
time.sleep(0.5)

latencies, failures = [], 0
deadline = time.time() + seconds
while time.time() < deadline:
    started = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.settimeout(10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        reply = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        s.close()
        if reply.startswith(b"HTTP/1.1 200"):
            latencies.append(time.time() - started)
        else:
            failures += 1
    except OSError:
        failures += 1
    time.sleep(0.1)

for thread in threads:
    thread.join()
print(json.dumps({
    "ok": len(latencies), "failures": failures, "max_latency": max(latencies) if latencies else None,
    "attackers_closed": len(closed_after), "longest_attacker": max(closed_after) if closed_after else None,
}))
