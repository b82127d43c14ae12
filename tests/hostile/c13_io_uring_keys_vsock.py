# expect-output-without: ESCAPED
# class 13: io_uring, the kernel keyring and AF_VSOCK are refused
import ctypes
import socket


async def run(event, step):
    def probe():
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        params = ctypes.create_string_buffer(120)
        if libc.syscall(425, 8, params) >= 0:  # io_uring_setup
            out.append("ESCAPED: io_uring")
        if libc.syscall(248, b"user", b"k", b"v", 1, -3) >= 0:  # add_key to the session keyring
            out.append("ESCAPED: add_key")
        try:
            socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
            out.append("ESCAPED: vsock")
        except OSError:
            pass
        return out or "contained"
    return await step.do("probe", probe)
