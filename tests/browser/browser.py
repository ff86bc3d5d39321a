#!/usr/bin/env python3
"""browser.py - Debian's chromium, headless, for the web console's tests.

A test imports it from its own directory (tests/browser/):

    import browser
    browser.skip_unless_browser()          # TAP "1..0 # SKIP ..." and exit 0 when
                                           # chromium, chromedriver or selenium is missing
    tap = browser.Tap()
    with browser.Browser(browser.artifacts_dir()) as b, tap.guard("the console"):
        b.get(url)
        b.wait_until(lambda: b.text("h1") == "kpool", 10, "the title")
        b.screenshot("home")               # artifacts_dir/home.png
        tap.ok(not b.console_errors(), "no errors in the browser's console")
    sys.exit(tap.done())

A shell test (one sourcing tests/integration/lib.sh) asks first with
`reason=$("$PYTHON3" tests/browser/browser.py --check) || skip_all "$reason"`.

Needs chromium, chromium-driver and python3-selenium (4.x), which
scripts/setup installs.  KPOOL_CHROMIUM and KPOOL_CHROMEDRIVER name other
binaries; KPOOL_ARTIFACTS (make check sets it to build/artifacts) is where
screenshots go.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

CHROMIUM = os.environ.get("KPOOL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KPOOL_CHROMEDRIVER", "/usr/bin/chromedriver")
HOW = "Debian: chromium chromium-driver python3-selenium; scripts/setup installs them"


def missing():
    """What the browser tests lack, as one line; "" when nothing."""
    lack = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        lack.append("the selenium module for %s" % sys.executable)
    return ", ".join(lack)


def _debian_python():
    """Debian's /usr/bin/python3 when it is not this one and has selenium."""
    debian = "/usr/bin/python3"
    if os.path.realpath(sys.executable) == os.path.realpath(debian) or not os.access(debian, os.X_OK):
        return None
    ok = subprocess.run([debian, "-c", "import selenium"], capture_output=True).returncode == 0
    return debian if ok else None


def skip_unless_browser():
    """Skips the whole test, in TAP, unless the browser machinery is there.

    The tests run under build-aux/tap-driver.sh, where a skip is a
    "1..0 # SKIP reason" plan and exit status 0 (77 would be an error there).
    A python3 without selenium (a pyenv one first on PATH, say) hands over to
    Debian's /usr/bin/python3 when that one has it."""
    why = missing()
    if not why:
        return
    if "selenium" in why and not os.environ.get("KPOOL_BROWSER_REEXEC"):
        debian = _debian_python()
        if debian:
            os.environ["KPOOL_BROWSER_REEXEC"] = "1"
            sys.stdout.flush()
            os.execv(debian, [debian] + sys.argv)
    print("1..0 # SKIP browser tests: missing %s (%s)" % (why, HOW), flush=True)
    print("!!! browser tests SKIPPED: missing %s (%s)" % (why, HOW), file=sys.stderr, flush=True)
    sys.exit(0)


def artifacts_dir(name="console"):
    """$KPOOL_ARTIFACTS/NAME (make check: build/artifacts/NAME, which make
    clean removes), else build/artifacts/NAME in the source tree."""
    base = os.environ.get("KPOOL_ARTIFACTS")
    if not base:
        top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        base = os.path.join(top, "build", "artifacts")
    return os.path.join(base, name)


class Tap:
    """TAP lines on stdout; done() prints the plan and returns the exit status."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, desc, detail=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, desc), flush=True)
        if not cond and detail:
            self.diag(detail)
        return bool(cond)

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line, flush=True)

    def guard(self, what):
        """A context in which an exception is one failed test point, its
        traceback as diagnostics, and is not raised further."""
        tap = self

        class Guard:
            def __enter__(self):
                return tap

            def __exit__(self, kind, exc, tb):
                if exc is None:
                    return False
                tap.ok(False, "%s: %s: %s" % (what, kind.__name__, str(exc).strip().splitlines()[0]
                                              if str(exc).strip() else ""))
                tap.diag("".join(traceback.format_exception(kind, exc, tb)))
                return True

        return Guard()

    def done(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0


class BrowserTimeout(AssertionError):
    pass


class Browser:
    """A headless chromium with a fresh profile, driven through chromedriver,
    its page WIDTHxHEIGHT.

    Screenshots go to artifacts_dir; the browser's console (console.*,
    uncaught errors, CSP violations, failed loads) is kept for console_errors()."""

    def __init__(self, artifacts_dir, width=1280, height=1000):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.artifacts = artifacts_dir
        os.makedirs(self.artifacts, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix="kpool-browser.")
        self._log = []
        self.driver = None
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--window-size=%d,%d" % (width, height),
                  "--user-data-dir=" + os.path.join(self._tmp, "profile"),
                  "--no-first-run", "--no-default-browser-check", "--no-proxy-server",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-extensions", "--disable-gpu"):
            opts.add_argument(a)
        if os.geteuid() == 0:
            opts.add_argument("--no-sandbox")  # chromium refuses to run as root with it
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self._driver_log = os.path.join(self._tmp, "chromedriver.log")
        service = Service(executable_path=CHROMEDRIVER,
                          service_args=["--log-path=" + self._driver_log])
        t0 = time.monotonic()
        try:
            self.driver = webdriver.Chrome(service=service, options=opts)
        except Exception as e:
            tail = ""
            try:
                with open(self._driver_log, errors="replace") as f:
                    tail = "".join(f.readlines()[-20:])
            except OSError:
                pass
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise RuntimeError("chromium did not start (%s): %s\nchromedriver's log ends:\n%s"
                               % (CHROMIUM, e, tail)) from e
        self._service = service
        # The window is WIDTHxHEIGHT less what headless chromium keeps for its
        # toolbars (143 px of height in 156): grown by that, the page's
        # viewport, and so every screenshot, is WIDTHxHEIGHT.
        try:
            dw, dh = self.js("return [outerWidth - innerWidth, outerHeight - innerHeight]")
            if dw > 0 or dh > 0:
                self.driver.set_window_size(width + max(dw, 0), height + max(dh, 0))
        except Exception:
            self.quit()
            raise
        self.start_seconds = time.monotonic() - t0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()
        return False

    def quit(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
                shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- pages
    def get(self, url):
        self.driver.get(url)

    @property
    def url(self):
        return self.driver.current_url

    def js(self, script, *args):
        """Runs SCRIPT (a function body: 'return ...') in the page; not subject
        to the page's CSP."""
        return self.driver.execute_script(script, *args)

    def screenshot(self, name):
        """The page's viewport (the whole window's content, WIDTHxHEIGHT) as
        artifacts_dir/NAME.png; returns its path."""
        path = os.path.join(self.artifacts, name + ".png")
        if not self.driver.save_screenshot(path):
            raise RuntimeError("screenshot %s not written" % path)
        return path

    def wait_until(self, fn, timeout=10, what="a condition"):
        """Calls fn() every 0.1 s until it returns something true, and returns
        that; an exception from fn (an element not there yet) counts as not
        yet.  Past the deadline: a screenshot timeout-N.png and BrowserTimeout
        naming WHAT, the URL and fn's last answer."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = fn()
                if v:
                    return v
                last = v
            except Exception as e:  # noqa: BLE001 - anything fn raises is "not yet"
                last = e
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        shot = ""
        try:
            self._timeouts = getattr(self, "_timeouts", 0) + 1
            shot = ", screenshot " + self.screenshot("timeout-%d" % self._timeouts)
        except Exception:  # noqa: BLE001
            pass
        raise BrowserTimeout("%s: not within %gs (at %s; last: %r%s)"
                             % (what, timeout, self.url, last, shot))

    # ---- elements (CSS selectors)
    def find(self, css, timeout=5):
        """The first element matching CSS, waiting up to TIMEOUT for it."""
        from selenium.webdriver.common.by import By
        return self.wait_until(lambda: self.driver.find_element(By.CSS_SELECTOR, css),
                               timeout, "an element " + css)

    def find_all(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css, timeout=5):
        return self.find(css, timeout).text

    def click(self, css, timeout=5):
        self.find(css, timeout).click()

    def type(self, css, text, clear=True, timeout=5):
        el = self.find(css, timeout)
        if clear:
            el.clear()
        el.send_keys(text)

    def submit(self, form_css, timeout=5):
        """Submits the form as a user would: a click on its submit button, or
        requestSubmit() when it has none."""
        form = self.find(form_css, timeout)
        from selenium.webdriver.common.by import By
        buttons = form.find_elements(By.CSS_SELECTOR,
                                     "button[type=submit], input[type=submit], button:not([type])")
        if buttons:
            buttons[0].click()
        else:
            self.js("arguments[0].requestSubmit()", form)

    # ---- the browser's console
    def console_log(self):
        """Every entry of the browser's console so far (dicts with level,
        message, source, timestamp); the driver hands each out once, so they
        are kept here."""
        self._log.extend(self.driver.get_log("browser"))
        return list(self._log)

    def console_errors(self):
        """The SEVERE entries: uncaught errors, console.error, CSP
        violations, failed loads."""
        return [e for e in self.console_log() if e.get("level") == "SEVERE"]

    # ---- cost
    def memory_mb(self):
        """The proportional set size (PSS) of chromedriver and every chromium
        process under it, in MB (Linux /proc), or None."""
        try:
            root = self._service.process.pid
            kids = {}
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        with open("/proc/%s/stat" % p) as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                        kids.setdefault(ppid, []).append(int(p))
                    except (OSError, ValueError, IndexError):
                        pass
            todo, kb = [root], 0
            while todo:
                pid = todo.pop()
                todo.extend(kids.get(pid, []))
                try:
                    with open("/proc/%d/smaps_rollup" % pid) as f:
                        for line in f:
                            if line.startswith("Pss:"):
                                kb += int(line.split()[1])
                except OSError:
                    pass
            return kb / 1024.0
        except Exception:  # noqa: BLE001
            return None


if __name__ == "__main__":
    # browser.py --check: prints what is missing and exits 1, or exits 0
    # (as skip_unless_browser() would: selenium in Debian's python3 will do).
    if sys.argv[1:] != ["--check"]:
        sys.exit("usage: browser.py --check")
    why = missing()
    if why.startswith("the selenium module") and _debian_python():
        why = ""
    if why:
        print("browser tests: missing %s (%s)" % (why, HOW))
    sys.exit(1 if why else 0)
