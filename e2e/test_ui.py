"""The web UI in a real browser (Debian's Chromium driven by Playwright) against the dev
cluster and a running operator: the list updates live, the timeline shows a retried
step's attempts, the send-event button completes a waiting instance, revisions compare
side by side, and a user without RBAC on a tenant does not see it.

TENANTFLOW_UI_SCREENSHOTS=docs/ui writes a screenshot of each view there (docs/ui.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from playwright.sync_api import Browser, Page, expect, sync_playwright

from e2e.conftest import GROUP, Tenant
from tenantflow_dev.browser import CHROMIUM, CHROMIUM_ARGS, start_ui

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SHOTS = os.environ.get("TENANTFLOW_UI_SCREENSHOTS")

WAITER = """
async def run(event, step, env):
    await step.do("prepare", lambda: "ready")
    got = await step.wait_for_event("approval", type="go", timeout="1h")
    return {"approved": got["payload"]}
"""

FLAKY = """
from tenantflow.sdk import current_attempt

async def run(event, step, env):
    def deploy():
        raise ValueError(f"registry unreachable (attempt {current_attempt()})")
    await step.sleep("cool-down", "1s")
    await step.do("deploy", deploy, retries={"limit": 2, "delay": "1s", "backoff": "constant"})
"""

TALKER = """
async def run(event, step, env):
    def say(part):
        print(f"{part}: hello")
        return part
    await step.do("before", lambda: say("before"))
    got = await step.wait_for_event("go", type="go", timeout="1h")
    await step.do("after", lambda: say("after"))
    return got["payload"]
"""


@pytest.fixture(scope="module")
def ui(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_ui(kubeconfig, tmp_path_factory.mktemp("ui") / "ui.log")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture(scope="module")
def workflows(tenant: Tenant) -> Tenant:
    return tenant.define_all(waiter=WAITER, flaky=FLAKY, talker=TALKER)


def open_view(page: Page, url: str, view: str) -> None:
    page.goto(f"{url}#/{view}")


def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_the_instance_list_updates_when_an_instance_finishes(
    workflows: Tenant, ui: str, page: Page
) -> None:
    name = workflows.start("waiter", {"pr": 42})
    workflows.wait_phase(name, "Waiting", timeout=60)
    open_view(page, ui, f"instances?namespace={workflows.ns}")
    row = page.locator(f'#instances tr[data-instance="{name}"]')
    expect(row.locator("td.phase")).to_have_text("Waiting", timeout=15_000)
    workflows.send_event(name, "go", {"by": "bob"})  # not through the page: it must notice
    expect(row.locator("td.phase")).to_have_text("Complete", timeout=30_000)
    expect(page.locator('#counts [data-phase="Complete"]')).to_be_visible()


def test_the_timeline_shows_a_retried_steps_attempts(
    workflows: Tenant, ui: str, page: Page
) -> None:
    name = workflows.start("flaky")
    workflows.wait_phase(name, "Errored", timeout=60)
    open_view(page, ui, f"instance/{workflows.ns}/{name}")
    deploy = page.locator('#timeline g[data-step="deploy"]')
    expect(deploy.locator("text.note")).to_have_text("\u00d73 attempts", timeout=15_000)
    expect(page.locator('#timeline g[data-step="cool-down"] text.note')).to_have_text("slept")
    errors = page.locator("#step-errors")
    expect(errors).to_contain_text("deploy — 3 attempt(s), last: ValueError")
    expect(errors).to_contain_text("registry unreachable (attempt 3)")
    for n in (1, 2, 3):  # every attempt's own error, not only the last
        expect(errors).to_contain_text(f"attempt {n} at")
    shot(page, "instance-errored")


def test_the_send_event_button_completes_a_waiting_instance(
    workflows: Tenant, ui: str, page: Page
) -> None:
    name = workflows.start("waiter", {"pr": 7})
    workflows.wait_phase(name, "Waiting", timeout=60)
    open_view(page, ui, f"instance/{workflows.ns}/{name}")
    form = page.locator("#send-event")
    expect(form.locator('input[name="type"]')).to_have_value("go", timeout=15_000)
    expect(page.locator('#timeline g[data-step="approval"] text.note')).to_have_text("waits for go")
    shot(page, "instance-waiting")
    form.locator('input[name="payload"]').fill('{"by": "carol"}')
    form.locator("button").click()
    expect(page.locator("h1 .badge")).to_have_text("Complete", timeout=30_000)
    assert workflows.status(name)["output"] == {"approved": {"by": "carol"}}
    expect(page.locator("#inbox")).to_contain_text("approval")  # consumed by that step


def test_the_logs_pane_shows_new_lines_while_the_page_is_open_and_filters_by_step(
    workflows: Tenant, ui: str, page: Page
) -> None:
    """Issue 34.1: lines written after the page was opened appear in it (no reload), and
    the step picker shows one step's lines."""
    name = workflows.start("talker")
    workflows.wait_phase(name, "Waiting", timeout=60)
    open_view(page, ui, f"instance/{workflows.ns}/{name}")
    logs = page.locator("#logs")
    expect(logs).to_contain_text("before: hello", timeout=15_000)
    expect(logs).not_to_contain_text("after: hello")
    workflows.send_event(name, "go", {"by": "dan"})  # not through the page
    expect(logs).to_contain_text("after: hello", timeout=30_000)
    expect(page.locator("h1 .badge")).to_have_text("Complete", timeout=30_000)
    page.locator("#log-step").select_option("after")
    expect(page.locator("#logs")).to_contain_text("after: hello")
    expect(page.locator("#logs")).not_to_contain_text("before: hello")


def test_revisions_compare_side_by_side(workflows: Tenant, ui: str, page: Page) -> None:
    workflows.define("waiter", WAITER.replace('"ready"', '"ready, again"'))
    workflows.wait_revision("waiter", 2)
    open_view(page, ui, f"definition/{workflows.ns}/waiter?a=1&b=2")
    expect(page.locator('#revisions tr[data-revision="2"]')).to_contain_text("active")
    changed = page.locator("#diff tr.replace")
    expect(changed.locator("td.l")).to_contain_text('"ready"', timeout=15_000)
    expect(changed.locator("td.r")).to_contain_text('"ready, again"')


def user_kubeconfig(admin: Path, token: str, out: Path) -> Path:
    cfg = yaml.safe_load(admin.read_text())
    cfg["users"] = [{"name": "alice", "user": {"token": token}}]
    for ctx in cfg["contexts"]:
        ctx["context"]["user"] = "alice"
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_a_user_without_rbac_on_a_tenant_cannot_see_it(
    workflows: Tenant,
    tenant_factory: Any,
    api_client: client.ApiClient,
    kubeconfig: Path,
    tmp_path: Path,
    browser: Browser,
) -> None:
    other = tenant_factory()
    other.define("waiter", WAITER)
    other.wait_revision("waiter", 1)
    hidden = other.start("waiter")
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    sa = f"alice-{workflows.name}"
    core.create_namespaced_service_account("default", {"metadata": {"name": sa}})
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": "default"}
    rbac.create_namespaced_role_binding(
        workflows.ns,
        {
            "metadata": {"name": sa},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "tenant-editor",
            },
            "subjects": [subject],
        },
    )
    rbac.create_cluster_role(
        {
            "metadata": {"name": sa},
            "rules": [{"apiGroups": [GROUP], "resources": ["tenants"], "verbs": ["get", "list"]}],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": sa},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": sa},
            "subjects": [subject],
        }
    )
    try:
        token = core.create_namespaced_service_account_token(
            sa, "default", {"spec": {"expirationSeconds": 3600}}
        ).status.token
        proc, url = start_ui(
            user_kubeconfig(kubeconfig, token, tmp_path / "alice"), tmp_path / "ui.log"
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            open_view(page, url, "tenants")
            expect(page.locator(f'#tenants tr[data-tenant="{workflows.name}"]')).to_be_visible(
                timeout=15_000
            )
            expect(page.locator(f'#tenants tr[data-tenant="{other.name}"]')).to_have_count(0)
            # across tenants: alice may not watch the cluster, so one watch per tenant she
            # sees keeps her list live (and the other tenant's instances never show)
            open_view(page, url, "instances")
            expect(page.locator("#instances")).to_be_visible(timeout=15_000)
            page.wait_for_timeout(1000)  # the watches are open
            fresh = workflows.start("waiter", {"pr": 99})
            expect(page.locator(f'#instances tr[data-instance="{fresh}"]')).to_be_visible(
                timeout=30_000
            )
            expect(page.locator(f'#instances tr[data-instance="{hidden}"]')).to_have_count(0)
            expect(page.locator("#live")).to_have_text("")
            open_view(page, url, f"instances?namespace={other.ns}")
            expect(page.locator("#error")).to_contain_text("forbidden", timeout=15_000)
            open_view(page, url, f"instance/{other.ns}/{hidden}")
            expect(page.locator("#error")).to_contain_text("forbidden", timeout=15_000)
            expect(page.locator("#timeline")).to_have_count(0)
            context.close()
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        rbac.delete_cluster_role_binding(sa)
        rbac.delete_cluster_role(sa)
        rbac.delete_namespaced_role_binding(sa, workflows.ns)
        core.delete_namespaced_service_account(sa, "default")


HOSTILE = """
async def run(event, step, env):
    def boom():
        raise ValueError('<img src=x onerror="window.pwned=1">')
    await step.do('<script>window.pwned=2</script>', lambda: '<b>bold</b>')
    await step.do('<img src=y onerror="window.pwned=3">', boom, retries={'limit': 0})
"""


def test_what_tenant_code_writes_is_shown_as_text_never_run_as_markup(
    workflows: Tenant, ui: str, page: Page
) -> None:
    """Step names, outputs and error messages are the tenant's: a tenant that writes HTML
    or script there must not run code in the browser of whoever looks at it."""
    workflows.define("hostile-ui", HOSTILE)
    workflows.wait_revision("hostile-ui", 1)
    name = workflows.start("hostile-ui", {"html": "<iframe src=//evil></iframe>"})
    workflows.wait_phase(name, "Errored", timeout=60)
    open_view(page, ui, f"instance/{workflows.ns}/{name}")
    expect(page.locator("#step-errors")).to_contain_text('<img src=x onerror="window.pwned=1">')
    expect(page.locator("#timeline")).to_contain_text("<script>window.pwned=2</script>")
    expect(page.locator("body")).to_contain_text("<iframe src=//evil></iframe>")
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main iframe, main script, main [onerror]").count() == 0
