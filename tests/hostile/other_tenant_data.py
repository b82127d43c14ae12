# expect-error: FileNotFoundError
async def run(event, step):
    other = event["payload"]["other_data_dir"]
    await step.do("peek", lambda: open(f"{other}/tenant.sqlite3", "rb").read(16),
                  retries={"limit": 0})
