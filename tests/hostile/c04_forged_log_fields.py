# expect-output-without: ESCAPED
# class 4: log fields named like the operator's own stay namespaced under `fields`
async def run(event, step, env):
    env.log.info("forged", tenant="other", instance="x/y", event="boom", logger="tenantflow.operator",
                 level="critical", ts="1970")
    return "logged"
