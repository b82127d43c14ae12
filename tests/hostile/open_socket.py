# expect-error: OSError
import socket


async def run(event, step):
    await step.do("dial", lambda: socket.create_connection(("1.1.1.1", 80), timeout=2),
                  retries={"limit": 0})
