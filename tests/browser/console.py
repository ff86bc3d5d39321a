#!/usr/bin/env python3
"""The web console in a real browser (headless chromium), against kpoold on
its embedded broker: a wrong token is refused and the right one logs in;
the overview's counts are /metrics' counts; a dead-lettered job whose value
and headers hold <script> and onerror= payloads is shown as text and
nothing of it runs; replayed from its page, the probe handler gets it once;
a form posted without its CSRF token is refused; a binding paused from the
overview handles nothing while its lag grows, and once resumed handles
every job once; a process restarted from the processes page comes back
with a new pid; a read-only console (no token_file) offers no action and
refuses a POST.  Screenshots of each page go to the artifacts directory
(build/artifacts/console).  TAP on stdout."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402

TOP = os.environ.get("top_builddir") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build")
KPOOLD = os.path.join(TOP, "kpoold", "kpoold")
KPOOL = os.path.join(TOP, "kpool", "kpool")


def wait(fn, timeout, what):
    """fn() every 0.1 s until true (returned); AssertionError naming WHAT past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("%s: not within %gs" % (what, timeout))
        time.sleep(0.1)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Pool:
    """kpoold on a conf of its own in directory T: a binding "orders" of the
    probe handler (2 processes) and the console."""

    def __init__(self, t, token_file):
        self.t = t
        self.state = os.path.join(t, "state")
        self.conf = os.path.join(t, "kpool.conf" if token_file else "ro.conf")
        plugins = os.path.join(t, "plugins")
        os.makedirs(plugins, exist_ok=True)
        for d in ("plugins/.libs", "tests/plugins/.libs"):
            for so in os.listdir(os.path.join(TOP, d)):
                if so.endswith(".so") and not os.path.exists(os.path.join(plugins, so)):
                    os.symlink(os.path.join(TOP, d, so), os.path.join(plugins, so))
        with open(self.conf, "w") as f:
            f.write("[kafka]\nbootstrap.servers = embedded\n"
                    "[pool]\nplugin_dir = %s\nstate_dir = %s\nmetrics_listen = 127.0.0.1:0\n"
                    "[worker:orders]\ntopic = orders\nhandler = probe\nprocesses = 2\n"
                    "max_attempts = 1\nrecord = %s/record\nfixed_when = %s/fixed\n"
                    "[console]\nlisten = 127.0.0.1:0\n%s"
                    % (plugins, self.state, t, t,
                       "token_file = %s\n" % token_file if token_file else ""))
        for f in ("console.url", "metrics.address"):
            try:
                os.unlink(os.path.join(self.state, f))
            except OSError:
                pass
        self.log = os.path.join(t, os.path.basename(self.conf) + ".log")
        self.proc = subprocess.Popen([KPOOLD, "-c", self.conf], stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        url = os.path.join(self.state, "console.url")
        wait(lambda: read(url).strip(), 30, "the console's address in " + url)
        self.url = read(url).strip().rstrip("/")
        maddr = os.path.join(self.state, "metrics.address")
        wait(lambda: read(maddr).strip(), 30, "the metrics address")
        self.metrics_url = "http://" + read(maddr).strip() + "/metrics"
        wait(lambda: all("worker=orders#%d assigned partitions=" % k in read(self.log)
                         for k in (0, 1)), 60, "both workers joined their group")

    def send(self, lines, *headers):
        args = [KPOOL, "-c", self.conf, "send", "orders"]
        for h in headers:
            args += ["--header", h]
        subprocess.run(args, input="".join(l + "\n" for l in lines).encode(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def record(self):
        """The probe's calls: (event id, attempt, result) per line."""
        return [tuple(l.split()[:3]) for l in read(os.path.join(self.t, "record")).splitlines()
                if len(l.split()) >= 3]

    def metric(self, name, labels):
        body = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), body, re.M)
        return int(float(m.group(1))) if m else 0

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def sanitizer_reports(self):
        """What a sanitizer (an --enable-sanitizers build) said in kpoold's log."""
        return re.findall(r"ERROR: (?:Address|Leak)Sanitizer.*|runtime error:.*", read(self.log))


def cell(b, key):
    return b.find('#b-orders [data-k="%s"]' % key).text.strip()


def main():
    browser.skip_unless_browser()
    tap = browser.Tap()
    t = tempfile.mkdtemp(prefix="kpool-console.")
    token = os.urandom(20).hex()
    token_file = os.path.join(t, "token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    pool = None
    failed_before = 0
    try:
        pool = Pool(t, token_file)
        tap.ok(True, "kpoold started with the console at " + pool.url)
        with browser.Browser(browser.artifacts_dir()) as b:
            tap.diag("chromium started in %.1fs" % b.start_seconds)

            with tap.guard("login"):
                b.get(pool.url + "/")
                b.wait_until(lambda: b.url.endswith("/login"), 10, "the login page")
                b.screenshot("01-login")
                b.type("#token", "not-the-token")
                b.submit("#login")
                err = b.text("#error")
                tap.ok("not the token" in err, "a wrong token is refused: " + err)
                b.screenshot("02-login-wrong-token")
                tap.ok(b.find_all(".who form") == [], "... and gets no session")
                b.type("#token", token)
                b.submit("#login")
                b.wait_until(lambda: b.find("#bindings"), 10, "the overview after the login")
                tap.ok(b.url.rstrip("/") == pool.url, "the right token logs in to the overview")

            with tap.guard("the overview against /metrics"):
                pool.send(['{"id":"ok%d"}' % i for i in range(12)])
                pool.send(['{"id":"x1","do":"fail","note":"<script>window.__pwned=1</script>"}'],
                          'x-evil=<img src=x onerror="window.__pwned=1">',
                          'x-also=</pre><script>window.__pwned=2</script>')
                wait(lambda: len(pool.record()) >= 13, 60, "13 jobs handled")

                def same():
                    done = pool.metric("kpool_jobs_total", 'worker="orders",result="done"')
                    dead = pool.metric("kpool_jobs_total",
                                       'worker="orders",result="dead_lettered"')
                    return (cell(b, "done") == str(done) and
                            cell(b, "dead_lettered") == str(dead) and done == 12 and dead == 1)
                b.wait_until(same, 15, "the live overview's done and dead-lettered = /metrics'")
                tap.ok(True, "the overview's counts equal /metrics: done %s, dead-lettered %s"
                       % (cell(b, "done"), cell(b, "dead_lettered")))
                tap.ok(cell(b, "running") == "2", "2 of 2 processes running")
                tap.ok(cell(b, "state") == "running", "state running")
                tap.ok(cell(b, "kafka") == "up", "Kafka up")
                b.wait_until(lambda: b.js("var i = document.querySelector('img.chart');"
                                          "return i.complete && i.naturalWidth > 0"),
                             10, "the chart drawn")
                b.screenshot("03-overview")

            with tap.guard("a hostile dead letter"):
                b.click('a[href="/dlq"]')
                b.find("#topics")
                b.screenshot("04-dead-letter-topics")
                b.click('#topics a[href="/dlq/orders.dlq"]')
                b.find("#records")
                b.wait_until(lambda: any(r.text.endswith("x1") for r in b.find_all("#records tbody tr")),
                             10, "x1 listed")
                b.screenshot("05-dead-letters")
                row = [r for r in b.find_all("#records tbody tr") if r.text.endswith("x1")][0]
                row.find_element("css selector", "a").click()
                b.find("#record")
                job = b.text("#job")
                tap.ok("<script>window.__pwned=1</script>" in job,
                       "the job's <script> shows as text")
                heads = b.text("#headers")
                tap.ok('<img src=x onerror="window.__pwned=1">' in heads,
                       "the header's onerror= shows as text")
                tap.ok("</pre><script>window.__pwned=2</script>" in heads,
                       "a header closing the markup shows as text")
                tap.ok(b.js("return window.__pwned === undefined"), "nothing of it ran")
                tap.ok(b.find_all("#headers img, #job script, #headers script") == [],
                       "no element was made from it")
                csp = [e for e in b.console_log() if "Content Security Policy" in e.get("message", "")]
                tap.ok(not csp, "no script even tried to run (no CSP violation)",
                       json.dumps(csp)[:500])
                b.screenshot("06-record")

            with tap.guard("a form without its CSRF token"):
                record_url = b.url
                b.js("document.querySelector('form.inline input[name=csrf]').value = ''")
                b.submit("form.inline")
                err = b.text("#error")
                tap.ok("CSRF" in err, "a replay posted without the CSRF token is refused: " + err)
                b.screenshot("07-csrf-refused")
                tap.ok(sum(1 for r in pool.record() if r[0] == "x1") == 1,
                       "... and x1 was not sent again")

            with tap.guard("replay from the page"):
                open(os.path.join(t, "fixed"), "w").close()
                b.get(record_url)
                b.submit("form.inline")
                b.wait_until(lambda: b.text("#replay-state") == "finished", 30,
                             "the replay finished (its page reloads itself)")
                tap.ok("replayed 1 record from orders.dlq to orders" in b.text("#replay-log"),
                       "the replay page shows what kpool dlq replay prints")
                b.screenshot("08-replay")
                wait(lambda: ("x1", "1", "done") in pool.record(), 30, "x1 handled")
                tap.ok([r for r in pool.record() if r[0] == "x1"] ==
                       [("x1", "1", "fail"), ("x1", "1", "done")],
                       "the probe handler got the replayed job once")

            with tap.guard("pause and resume"):
                b.get(pool.url + "/")
                b.submit('#b-orders form.inline')
                b.wait_until(lambda: cell(b, "state") == "paused", 15, "state paused")
                before = len(pool.record())
                pool.send(['{"id":"w%d"}' % i for i in range(20)])
                b.wait_until(lambda: cell(b, "lag") not in ("-", "") and int(cell(b, "lag")) >= 20,
                             30, "the lag grew to 20")
                tap.ok(True, "paused: the lag grew to " + cell(b, "lag"))
                tap.ok(len(pool.record()) == before, "paused: nothing handled")
                b.screenshot("09-paused")
                b.submit('#b-orders form.inline')
                b.wait_until(lambda: cell(b, "state") == "running", 15, "state running again")
                wait(lambda: sum(1 for r in pool.record() if r[0].startswith("w")) >= 20, 60,
                     "the 20 handled after resume")
                ws = [r[0] for r in pool.record() if r[0].startswith("w")]
                tap.ok(sorted(ws) == sorted("w%d" % i for i in range(20)),
                       "resumed: every job handled once")
                b.wait_until(lambda: cell(b, "lag") == "0", 30, "the lag back to 0")
                b.screenshot("10-resumed")

            with tap.guard("restart a process"):
                b.click('a[href="/processes"]')
                first = b.find("#processes tbody tr")
                rid = first.get_attribute("id")
                pid0 = first.find_elements("css selector", "td")[2].text
                b.screenshot("11-processes")
                first.find_element("css selector", "form button").click()

                def new_pid():
                    b.get(pool.url + "/processes")
                    tds = b.find("#" + rid).find_elements("css selector", "td")
                    return tds[3].text.startswith("running") and tds[2].text not in (pid0, "0")
                b.wait_until(new_pid, 30, "the process running again with a new pid")
                tds = b.find("#" + rid).find_elements("css selector", "td")
                tap.ok(int(tds[5].text) >= 1, "restarted from the page: pid %s -> %s, restarts %s"
                       % (pid0, tds[2].text, tds[5].text))
                b.screenshot("12-processes-restarted")
            # The refusals the test asked for are the only failed loads there may be.
            expected = ("/login - Failed to load resource: the server responded with a status "
                        "of 403", "/replay - Failed to load resource: the server responded with a "
                        "status of 403")
            errors = [e for e in b.console_errors()
                      if not (e.get("source") == "network" and
                              any(x in e.get("message", "") for x in expected))]
            tap.ok(not errors, "no other error in the browser's console (no script error, no "
                   "CSP violation, no failed load)", json.dumps(errors)[:800])
        tap.ok(pool.stop() == 0, "kpoold stops with status 0")
        tap.ok(not pool.sanitizer_reports(), "no sanitizer reports in kpoold's log",
               "\n".join(pool.sanitizer_reports())[:800])
        pool = None

        with tap.guard("read-only"):
            pool = Pool(t, None)
            with browser.Browser(browser.artifacts_dir()) as b:
                b.get(pool.url + "/")
                b.find("#bindings")
                tap.ok(b.find("#read-only").text == "read-only", "no login; it says read-only")
                tap.ok(b.find_all('form[method="post"]') == [], "the overview offers no action")
                b.screenshot("13-read-only")
                b.get(pool.url + "/dlq/orders.dlq")
                b.find("#records")
                tap.ok(b.find_all('form[method="post"]') == [], "the dead letters offer no replay")
                b.js("var f = document.createElement('form'); f.method = 'post';"
                     "f.action = '/bindings/orders/pause'; document.body.appendChild(f); f.submit()")
                err = b.text("#error")
                tap.ok("read-only" in err, "a POST is refused: " + err)
                b.screenshot("14-read-only-refused")
            tap.ok(pool.stop() == 0, "kpoold stops with status 0")
            tap.ok(not pool.sanitizer_reports(), "no sanitizer reports in kpoold's log")
            pool = None
    finally:
        if pool:
            pool.stop()
        failed_before = tap.failed
    if failed_before == 0 and not os.environ.get("KEEP"):
        shutil.rmtree(t, ignore_errors=True)
    else:
        tap.diag("kept " + t)
    tap.diag("screenshots in " + browser.artifacts_dir())
    sys.exit(tap.done())


if __name__ == "__main__":
    main()
