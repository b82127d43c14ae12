# expect-output-without: ESCAPED
# class 4: 20,000 log lines of 64 KiB: capped (lines and bytes) before they leave the sandbox
async def run(event, step, env):
    for i in range(20000):
        env.log.info("x" * 65536, n=i)
    return "flooded"
