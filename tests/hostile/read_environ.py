# expect-output-without: HMAC
async def run(event, step):
    def snoop():
        found = []
        for pid in ("1", "self"):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    found.append(f.read().decode(errors="replace"))
            except OSError as exc:
                found.append(type(exc).__name__)
        return found
    return await step.do("snoop", snoop)
