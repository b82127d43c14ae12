// expect-error: ProtocolError
// class 5: an `idle` whose message number is a list (unhashable: the engine's lookup of it
// raised inside its reader). A control message the engine cannot take ends the advance
// with a clear error, never an exception in the engine's reader loop.
export async function run(event, step) {
  return await step.do("forge", async () => {
    Deno.stdout.writeSync(new TextEncoder().encode('\x1e{"t":"idle","seq":[1]}\n'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    return "forged";
  });
}
