// expect-output-without: ESCAPED
// twice
// class 11: patching the runtime's globals in one advance (JSON.stringify, TextEncoder,
// Deno.stdout.writeSync, Object.prototype) and hoarding state in globalThis reaches no
// later advance: each advance is a fresh Deno process. Round 2 looks for round 1's marks
// before it patches anything.
export async function run(event, step) {
  const found = await step.do("look", async () => {
    const marks: string[] = [];
    if ((globalThis as any).planted) marks.push("globalThis");
    if ((JSON.stringify as any).planted) marks.push("JSON.stringify");
    if ((Deno.stdout.writeSync as any).planted) marks.push("Deno.stdout.writeSync");
    if ((Object.prototype as any).planted) marks.push("Object.prototype");
    return marks;
  });
  (globalThis as any).planted = true;
  for (const [owner, key] of [[JSON, "stringify"], [Deno.stdout, "writeSync"], [TextEncoder.prototype, "encode"]] as const) {
    const original = (owner as any)[key];
    const patched = function (this: unknown, ...args: unknown[]) { return original.apply(this, args); };
    (patched as any).planted = true;
    (owner as any)[key] = patched;
  }
  Object.defineProperty(Object.prototype, "planted", { value: true, enumerable: false, configurable: true });
  return found.length ? `ESCAPED ${found.join(", ")}` : "fresh";
}
