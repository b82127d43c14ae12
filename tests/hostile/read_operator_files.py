# expect-error: FileNotFoundError
import os


async def run(event, step):
    path = os.path.expanduser("~root/.cache/tenantflow/clusters/dev/kubeconfig")
    await step.do("steal", lambda: open(path).read(), retries={"limit": 0})
