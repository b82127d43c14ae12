# expect-error: TypeError
# class 5: a non-JSON log value (a set)
async def run(event, step, env):
    env.log.info("values", v={1, 2})
    return "logged"
