# expect-output-without: ESCAPED
# class 13: no nested user (or any) namespaces
import ctypes


async def run(event, step):
    def probe():
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        for name, flag in (("user", 0x10000000), ("mount", 0x00020000), ("net", 0x40000000)):
            if libc.unshare(flag) == 0:
                out.append(f"ESCAPED: unshare({name})")
        return out or "contained"
    return await step.do("probe", probe)
