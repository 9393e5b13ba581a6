"""``make screenshots``: the main pages of the Dagster UI, from a demo home, for the README.

On demand (not part of ``make test``). Runs a shortened demo (``mlops demo --days 12
--only-bigmart``, drift from day 9) in a temporary ``MLOPS_HOME`` (or uses ``--home``), starts
``dg dev`` on it as ``make dev`` does, and photographs each page with Debian's headless
``chromium`` (``apt-get install chromium``; playwright cannot download browsers here) into
``docs/screenshots/``. Chromium is driven through its DevTools protocol (``websockets``, which
the webserver installs), so a page is taken once it shows what it is about, after a click where
the view needs one (the monitoring chart opens from its metadata row, the plots from the
Table/Plots toggle). Nothing of the temporary home is kept.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from mlops_assets_tests.harness.dagster_ui import start_dagster_ui
from mlops_assets_tests.harness.homes import ISOLATED_VARIABLES
from mlops_assets_tests.harness.processes import free_port, stop_process_tree

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
UC = "bigmart_sales"
DEMO = ["demo", "--days", "12", "--only-bigmart", "--drift-from", "9", "--trials", "4", "--reset"]
WIDTH = 1600


@dataclass(frozen=True)
class Page:
    """A page of the UI: where, what shows it is loaded, what to click first, how tall."""

    path: str
    loaded: str  # text on the page once its data arrived
    click: str | None = None  # the text of a button to click before the picture
    shown: str | None = None  # a CSS selector that appears after the click
    height: int = 1000


PAGES = {
    "lineage": Page(
        f"/locations/__repository__@mlops_assets/asset-groups/{UC}/lineage", "champion_model"
    ),
    "monitoring": Page(
        f"/assets/{UC}/model_performance",
        "monitoring_view",
        click="[Show Markdown]",
        shown="[role=dialog] img",
        height=1100,
    ),
    "plots": Page(
        f"/assets/{UC}/model_performance",
        "monitoring_view",
        click="Plots",
        shown="canvas",
        height=1400,
    ),
    "automation": Page("/automation", f"{UC}__retrain_sensor"),
    "runs": Page("/runs", f"{UC}__retrain"),
}


def browser() -> str | None:
    """Debian's chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """Headless chromium and one tab, driven over the DevTools protocol."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={self.port}",
                f"--window-size={WIDTH},1000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ids = itertools.count(1)
        self.socket = connect(self._page_socket(), max_size=None, open_timeout=30)

    def _page_socket(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{self.port}/json/list"
                with urllib.request.urlopen(url, timeout=2) as response:
                    targets = json.loads(response.read())
                return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            except (OSError, StopIteration):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events in between are skipped)."""
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return found.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never showed {what}")
            time.sleep(0.5)

    def take(self, url: str, page: Page, out: Path) -> None:
        """Open ``url``, wait, click, wait, and save the visible page as a PNG."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=page.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=url)
        text = json.dumps(page.loaded)
        self.wait_for(f"document.body && document.body.innerText.includes({text})", page.loaded)
        if page.click:
            label = json.dumps(page.click)
            self.wait_for(
                "(() => { const b = [...document.querySelectorAll('button, a')]"
                f".find(e => e.textContent.trim() === {label}); "
                "if (b) b.click(); return !!b; })()",
                f"a button {page.click}",
            )
        if page.shown:
            self.wait_for(f"!!document.querySelector({json.dumps(page.shown)})", page.shown)
        time.sleep(2.0)  # images decoded, charts drawn, transitions over
        shot = self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.socket.close()
        stop_process_tree(self.process, grace=5.0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an existing MLOPS_HOME (no demo is run)")
    parser.add_argument("pages", nargs="*", help=f"pages to take (default all: {', '.join(PAGES)})")
    args = parser.parse_args(argv)
    executable = browser()
    if executable is None:
        print("no chromium here: `apt-get install -y chromium`, then `make screenshots`")
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="mlops-screenshots-"))
    home = (args.home or scratch / "mlops").resolve()  # DAGSTER_HOME must be absolute
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_VARIABLES}
    env.update(
        MLOPS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        BENTOML_HOME=str(home / "bentoml"),
        BENTOML_DO_NOT_TRACK="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    try:
        if args.home is None:
            started = time.monotonic()
            print(f"mlops {' '.join(DEMO)} in {home} ...", flush=True)
            mlops = Path(sys.executable).with_name("mlops")
            subprocess.run([str(mlops), *DEMO], env=env, check=True, cwd=ROOT)
            print(f"demo done in {time.monotonic() - started:.0f}s", flush=True)
        ui = start_dagster_ui(env, scratch / "dg-dev.log")
        chromium = Chromium(executable, scratch / "profile")
        try:
            OUT.mkdir(parents=True, exist_ok=True)
            for name in args.pages or list(PAGES):
                page = PAGES[name]
                out = OUT / f"{name}.png"
                chromium.take(ui.url + page.path, page, out)
                print(f"{out.relative_to(ROOT)}  <- {page.path}", flush=True)
        finally:
            chromium.close()
            ui.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
