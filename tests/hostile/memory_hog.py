# expect-error: MemoryError
async def run(event, step):
    def hog():
        chunks = []
        while True:
            chunks.append(bytearray(64 * 1024 * 1024))
    await step.do("hog", hog, retries={"limit": 0})
