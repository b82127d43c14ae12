# expect-lost: a busy loop outside any step blocks the worker until its CPU limit kills it
async def run(event, step):
    while True:
        pass
