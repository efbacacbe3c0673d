#!/usr/bin/env python3
"""One available file per device, through the API, for scripts/bench.

Reads "tenant device token" lines on stdin; for each device asks for an upload URL of BODY_FILE
as bench/seed-0.txt, PUTs the body there with the headers it was given, completes the upload,
and prints "tenant device token file_id". Many devices at once (threads), each request a plain
HTTP/1.1 exchange of the standard library: thousands of devices seed in seconds, where a curl
and a jq per step took minutes.

    scripts/bench-seed.py BASE_URL BODY_FILE [WORKERS] < tokens > data
"""

import concurrent.futures
import hashlib
import json
import sys
import urllib.request


def call(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def seed(base, body, digest, line):
    tenant, device, token = line.split()
    auth = {"Authorization": f"Bearer {token}"}
    ticket = json.loads(
        call(
            "POST",
            f"{base}/v1/tenants/{tenant}/devices/{device}/files/upload-url",
            json.dumps({"file_name": "bench/seed-0.txt", "sha256": digest, "size": len(body)}).encode(),
            {**auth, "Content-Type": "application/json"},
        )
    )
    call("PUT", ticket["url"], body, ticket.get("headers") or {})
    call("POST", f"{base}/v1/tenants/{tenant}/files/{ticket['file_id']}/complete", b"", auth)
    return f"{tenant} {device} {token} {ticket['file_id']}"


def main():
    base, body_file = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with open(body_file, "rb") as f:
        body = f.read()
    digest = hashlib.sha256(body).hexdigest()
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        # In the order of the tokens file; the first failure stops the run with its cause.
        for row in pool.map(lambda line: seed(base, body, digest, line), lines):
            print(row)


if __name__ == "__main__":
    main()
