#!/usr/bin/env python3
"""Round trips of `status --json` requests over the daemon's control socket.

    status-latency.py SOCKET COUNT [--meanwhile OP NAME]

Prints `p50 p99 max` in ms. With --meanwhile, another client keeps sending
OP (freeze, then thaw, alternately if OP is `freeze-thaw`) for NAME while
the status requests run, and the count of those it completed is printed too.
"""
import json
import socket
import sys
import threading
import time


def request(path, message):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(120)
        s.connect(path)
        s.sendall((json.dumps(message) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        return json.loads(data)


def main():
    path, count = sys.argv[1], int(sys.argv[2])
    stop = threading.Event()
    done = [0]
    if len(sys.argv) > 3 and sys.argv[3] == "--meanwhile":
        op, name = sys.argv[4], sys.argv[5]

        def busy():
            frozen = False
            while not stop.is_set():
                if op == "freeze-thaw":
                    verb = "thaw" if frozen else "freeze"
                    frozen = not frozen
                else:
                    verb = op
                request(path, {"op": verb, "names": [name]})
                done[0] += 1

        threading.Thread(target=busy, daemon=True).start()
        time.sleep(0.2)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        answer = request(path, {"op": "status", "name": None})
        times.append((time.perf_counter() - start) * 1000)
        assert answer["result"] == "status", answer
    stop.set()
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{p(0.5):.2f} {p(0.99):.2f} {times[-1]:.2f} {done[0]}")


main()
