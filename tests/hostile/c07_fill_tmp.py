# expect-error: OSError
# class 7: /tmp is a sized tmpfs
async def run(event, step):
    def fill():
        with open("/tmp/fill", "wb") as f:
            for _ in range(1024):
                f.write(b"x" * (1 << 20))
    await step.do("fill", fill, retries={"limit": 0})
