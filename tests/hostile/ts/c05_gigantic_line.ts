// expect-error: longer than
// class 5: 20 MiB on stdout without a newline: the engine keeps at most 16 MiB of one line
// and then ends the advance with a clear error (no unbounded buffer)
export async function run(event, step) {
  return await step.do("flood", { retries: { limit: 0 } }, async () => {
    const chunk = new TextEncoder().encode("\x1e" + "x".repeat((1 << 20) - 1));
    for (let i = 0; i < 20; i++) {
      for (let off = 0; off < chunk.length; ) off += Deno.stdout.writeSync(chunk.subarray(off));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return "written";
  });
}
