// expect-output-without: ESCAPED
// class 4: output by every path at once: 200 env.log lines of 64 KiB (fields too),
// 10,000 console.log/console.error lines, 10,000 raw lines each on stdout and stderr and
// a raw line of 1 MiB on each: what leaves the sandbox is capped (lines and bytes), each
// line namespaced and cut to 4 KiB
export async function run(event, step, env) {
  return await step.do("flood", async () => {
    const big = "y".repeat(64 * 1024);
    for (let i = 0; i < 200; i++) env.log.info(big, { i, big });
    for (let i = 0; i < 5000; i++) {
      console.log(`console line ${i}`);
      console.error(`console error line ${i}`);
    }
    const encoder = new TextEncoder();
    const rawLines = encoder.encode("raw line\n".repeat(10_000) + "z".repeat(1 << 20) + "\n");
    for (const stream of [Deno.stdout, Deno.stderr]) {
      for (let off = 0; off < rawLines.length; ) off += stream.writeSync(rawLines.subarray(off));
    }
    return "flooded";
  });
}
