# expect-error: OSError
# class 7: /dev/shm is a sized tmpfs, not the host's memory
async def run(event, step):
    def fill():
        with open("/dev/shm/fill", "wb") as f:
            for _ in range(1024):
                f.write(b"x" * (1 << 20))
    await step.do("fill", fill, retries={"limit": 0})
