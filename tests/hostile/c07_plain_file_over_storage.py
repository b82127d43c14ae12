# expect-error: OSError
# class 7: a plain file in the data dir cannot grow past the tenant's remaining storage
import os


async def run(event, step):
    def fill():
        try:
            with open("big.bin", "wb") as f:
                for _ in range(100):
                    f.write(b"x" * (1 << 20))
        finally:
            os.remove("big.bin")
    await step.do("fill", fill, retries={"limit": 0})
