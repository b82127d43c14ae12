"""Screenshots of the web UI's views for docs/ui.md, from the demo's cluster:
`make demo`, then `.venv/bin/python hack/ui_screenshots.py` (e2e/test_ui.py adds the
waiting and errored instance, TENANTFLOW_UI_SCREENSHOTS=docs/ui)."""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from tenantflow_dev.browser import CHROMIUM, CHROMIUM_ARGS, start_ui
from tenantflow_dev.devcluster import DevCluster

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "ui"
VIEWS = {
    "tenants": "tenants",
    "instances": "instances",
    "instance-ci": "instance/tenant-acme/build-1",
    "instance-children": "instance/tenant-acme/release-1",
    "instance-saga": "instance/tenant-globex/order-1002",
    "definition": "definition/tenant-acme/ci-pipeline",
}


def main() -> int:
    proc, url = start_ui(DevCluster().kubeconfig)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, view in VIEWS.items():
                page.goto(f"{url}#/{view}")
                page.wait_for_timeout(1500)  # the live views settle
                if page.locator("#error").count():
                    print(f"{view}: {page.locator('#error').inner_text()}", file=sys.stderr)
                    return 1
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                print(OUT / f"{name}.png")
            browser.close()
    finally:
        proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
