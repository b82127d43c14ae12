"""A real CI pipeline: clone with a token, run the tests, wait for approval, deploy."""

from checkout import clone
from testing import run_tests

from tenantflow.sdk import NonRetryableError


async def run(event, step, env):
    repo, ref = event["payload"]["repo"], event["payload"].get("ref", "main")

    def build():
        # checkout and tests in one step: its files live only as long as this process
        with clone(repo, ref, env.secrets["git"]["token"].strip()) as (path, commit):
            report = run_tests(path)
        return {"commit": commit, **report}

    report = await step.do("build", build, retries={"limit": 1, "delay": "2s"}, timeout="5m")
    env.log.info("built", commit=report["commit"], ran=report["ran"])
    if report["failed"]:
        raise NonRetryableError(
            f"{len(report['failed'])} of {report['ran']} tests failed at "
            f"{report['commit'][:12]}: {', '.join(report['failed'])}"
        )
    approval = await step.wait_for_event("approval", type="approved", timeout="1h")

    def deploy():
        env.db.execute(
            "CREATE TABLE IF NOT EXISTS deployments (repo TEXT, commit_sha TEXT, by TEXT)"
        )
        env.db.execute(
            "INSERT INTO deployments VALUES (?, ?, ?)",
            [repo, report["commit"], approval["payload"]["by"]],
        )
        return True

    await step.do("deploy", deploy)
    return {"commit": report["commit"], "tests": report["ran"], "by": approval["payload"]["by"]}
