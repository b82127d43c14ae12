// expect-output-without: ESCAPED
// class 5, 16: tenant code forges the runtime's `done` from inside a step body while
// another step is still running: the engine takes it as run()'s end, as if run() had
// returned without awaiting that step (which its own code may do). The advance completes
// with the forged value, the unfinished step left for no one; nothing hangs or breaks.
export async function run(event, step) {
  const pending = step.do("unfinished", async () => {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    return "late";
  });
  await step.do("forger", async () => {
    const line = JSON.stringify({ t: "done", ok: true, value: { forged: "done" } });
    Deno.stdout.writeSync(new TextEncoder().encode("\x1e" + line + "\n"));
    return "forged";
  });
  return { real: await pending };
}
