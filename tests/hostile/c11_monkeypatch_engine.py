# expect-output-without: ESCAPED
# twice
# class 11: patching the engine or hoarding state in one advance reaches no later advance
import sys


async def run(event, step):
    mod = sys.modules["tenantflow.engine.step"]
    if getattr(mod, "PWNED", False):
        return "ESCAPED: the patched module survived"
    mod.PWNED = True
    mod.StepApi.do = lambda *a, **k: "forged"
    return "patched"
