"""The web UI with many instances in the cluster: the first screen of the instance list in
a real browser (Debian's Chromium, Playwright), and the JSON pages behind it.

Run by the scale benchmark while its N instances (BENCH_WAITING, 50,000 for the headline)
are all Waiting: `ui_first_screen_s` is navigation to the first row drawn."""

from __future__ import annotations

import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from tenantflow_dev.browser import CHROMIUM, CHROMIUM_ARGS, start_ui

TRIES = 5


def _get_ms(url: str, token: str) -> float:
    request = urllib.request.Request(url, headers={"X-Tenantflow-Token": token})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def measure(kubeconfig: Path, namespace: str) -> dict[str, Any]:
    """The cluster-wide list, a namespace's Waiting ones, the tenants; the first screen of
    the instance list."""
    return _measure(
        kubeconfig,
        {
            "ui_instances_page_ms": "/api/instances?limit=50",
            "ui_instances_filtered_page_ms": (
                f"/api/instances?limit=50&namespace={namespace}&phase=Waiting"
            ),
            "ui_tenants_ms": "/api/tenants",
        },
        ("ui_first_screen_s", "#/instances"),
    )


def measure_archived(kubeconfig: Path, namespace: str) -> dict[str, Any]:
    """A namespace whose instances are archived: its page (the live ones, then the rows its
    tenant's history keeps, through the runner) and its first screen."""
    return _measure(
        kubeconfig,
        {"ui_archived_page_ms": f"/api/instances?limit=50&namespace={namespace}"},
        ("ui_archived_first_screen_s", f"#/instances?namespace={namespace}"),
    )


def _measure(kubeconfig: Path, pages: dict[str, str], screen: tuple[str, str]) -> dict[str, Any]:
    """Each JSON page's median time, and (`screen`: its key and route) the median time
    from navigating to the route to its first instance row drawn in Chromium."""
    from playwright.sync_api import sync_playwright

    proc, url = start_ui(kubeconfig)
    try:
        base, _, token = url.partition("/?token=")
        out: dict[str, Any] = {
            key: round(statistics.median(_get_ms(base + page, token) for _ in range(TRIES)), 1)
            for key, page in pages.items()
        }
        screens = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for _ in range(TRIES):
                page = browser.new_page()
                started = time.perf_counter()
                page.goto(f"{base}/?token={token}{screen[1]}")
                page.locator("#instances tbody tr").first.wait_for(timeout=60_000)
                screens.append(time.perf_counter() - started)
                page.close()
            browser.close()
        out[screen[0]] = round(statistics.median(screens), 3)
        return out
    finally:
        proc.terminate()
        proc.wait(10)
