// expect-error: RuntimeExited
// class 14: the runtime dies right after printing, on its own stderr, a line that names a
// token and goes on for 1,008 characters (what Deno prints for an uncaught error or a
// panic; Deno.exit here, so that the line is exactly this). The engine's error quoted the
// last 1,024 characters it printed: a cut at the start, here inside the secret, whose end
// went out unmasked (the runner masks whole values and a value's beginning left at the
// end of a cut string, never its end left at the start). It now quotes whole lines only,
// cut (if at all) at the end.
export async function run(event, step) {
  const secret = event.payload.secret;
  return await step.do("crash", { retries: { limit: 0 } }, async () => {
    const line = `error: Uncaught Error: token ${secret} rejected: ${"y".repeat(997)}\n`;
    Deno.stderr.writeSync(new TextEncoder().encode(line));
    await new Promise((resolve) => setTimeout(resolve, 300)); // the engine reads it first
    Deno.exit(1);
  });
}
