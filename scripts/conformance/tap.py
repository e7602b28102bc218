"""A recording pass-through between hanbrief and the proxy under test (loopback only).

Forwards every request unchanged to the upstream and writes one JSON line per exchange: when it
was sent and answered, the model, the status, the rate-limit headers and, for errors, the start
of the body. conformance.sh reads these lines to count 429s and early retries: the figures come
from what crossed the wire, not from hanbrief's own account of it.

    python3 tap.py LISTEN_PORT UPSTREAM_URL LOG_FILE
"""

import http.client
import http.server
import json
import sys
import threading
import time
import urllib.parse

LISTEN_PORT = int(sys.argv[1])
UPSTREAM = urllib.parse.urlsplit(sys.argv[2])
LOG = open(sys.argv[3], "a", encoding="utf-8")
LOCK = threading.Lock()
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
KEPT_HEADERS = (
    "retry-after",
    "retry-after-ms",
    "llm_provider-retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


class Tap(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the JSON lines are the log
        pass

    def do_GET(self):
        self.forward(None)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self.forward(self.rfile.read(length))

    def forward(self, body):
        sent = time.time()
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=1800)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reply_headers = resp.status, resp.getheaders()
        except OSError as e:
            status, reply_headers, data = 502, [], json.dumps({"error": {"message": str(e)}}).encode()
        finally:
            conn.close()
        done = time.time()
        self.send_response(status)
        for k, v in reply_headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        record = {"sent": sent, "done": done, "method": self.command, "path": self.path, "status": status}
        try:
            request = json.loads(body or b"{}")
            record["model"] = request.get("model")
            record["max_tokens"] = request.get("max_tokens")
        except ValueError:
            pass
        lower = {k.lower(): v for k, v in reply_headers}
        record["headers"] = {k: lower[k] for k in KEPT_HEADERS if k in lower}
        if status == 200:
            try:
                parsed = json.loads(data)
                # A health check answers a bare JSON string.
                usage = (parsed.get("usage") if isinstance(parsed, dict) else None) or {}
                record["prompt_tokens"] = usage.get("prompt_tokens")
                record["completion_tokens"] = usage.get("completion_tokens")
            except ValueError:
                pass
        else:
            record["error"] = data[:300].decode("utf-8", "replace")
        with LOCK:
            LOG.write(json.dumps(record) + "\n")
            LOG.flush()


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN_PORT), Tap).serve_forever()
