#!/usr/bin/env python3
"""The browser machinery the console's tests stand on, before the console:
headless chromium loads a page from a real loopback HTTP server whose
Content-Security-Policy allows scripts from the page's own origin only.
The external script runs; an inline script and an inline event handler do
not; the browser's console reports the CSP violation; a screenshot is
written, a PNG.  TAP on stdout."""

import http.server
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402

CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'"
PAGES = {
    "/": ("text/html; charset=utf-8",
          b"<!doctype html><html><head><meta charset=utf-8><title>smoke</title>"
          b"<link rel=stylesheet href=/app.css><script src=/app.js defer></script></head>"
          b"<body><h1>kpool smoke</h1>"
          b"<script>window.__pwned=1</script>"
          b"<img src=x onerror=\"window.__pwned=1\"></body></html>"),
    "/app.js": ("text/javascript", b"document.body.dataset.ok = '1';\n"),
    "/app.css": ("text/css", b"body { font: 16px sans-serif; background: #eef; }\n"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        page = PAGES.get(self.path)
        if page is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", page[0])
        self.send_header("Content-Length", str(len(page[1])))
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(page[1])

    def log_message(self, fmt, *args):
        pass


def png_size(path):
    """(width, height) from a PNG's IHDR, or None when it is no PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def main():
    browser.skip_unless_browser()
    tap = browser.Tap()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/" % server.server_address[1]
    shots = browser.artifacts_dir()
    shot = os.path.join(shots, "smoke.png")
    if os.path.exists(shot):
        os.unlink(shot)
    b = None
    try:
        with tap.guard("the browser"):
            b = browser.Browser(shots)
            tap.diag("chromium started headless in %.2f s" % b.start_seconds)
            t0 = time.monotonic()
            b.get(url)
            b.wait_until(lambda: b.js("return document.body.dataset.ok") == "1", 10,
                         "the external script setting data-ok")
            tap.diag("the page loaded and its script ran in %.2f s" % (time.monotonic() - t0))
            tap.ok(True, "the external script ran (data-ok=1)")
            tap.ok(b.text("h1") == "kpool smoke", "the page's text reads back")
            tap.ok(b.js("return document.readyState") == "complete"
                   and b.js("return typeof window.__pwned") == "undefined",
                   "neither the inline script nor the inline onerror ran",
                   "window.__pwned = %r" % b.js("return window.__pwned"))
            for kind in ("inline script", "inline event handler"):
                csp = b.wait_until(lambda: [e["message"] for e in b.console_errors()
                                            if "Content Security Policy" in e["message"]
                                            and kind in e["message"]],
                                   5, "the CSP violation of the %s in the browser's console" % kind)
                tap.ok(csp, "the %s's CSP violation is in the browser's console" % kind)
                tap.diag(csp[0][:200])
            path = b.screenshot("smoke")
            size = png_size(path) if os.path.exists(path) else None
            tap.ok(path == shot and size == (1280, 1000) and os.path.getsize(path) > 0,
                   "a screenshot is written, a 1280x1000 PNG (%s)" % path, "PNG size %r" % (size,))
            mb = b.memory_mb()
            if mb is not None:
                tap.diag("chromedriver and chromium: %.0f MB (PSS)" % mb)
    finally:
        if b is not None:
            b.quit()
        server.shutdown()
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
