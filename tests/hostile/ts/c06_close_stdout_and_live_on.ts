// expect-lost
// class 6: cut the runtime's only way back to the engine (Deno.stdout.close(), and
// node:fs closeSync of descriptors 1 and 2, which leave Deno's own copies open: the
// engine never sees an end of file) and live on with every error swallowed and a timer
// pending. The engine cannot tell a silent runtime from a busy one: the advance's process
// group is killed at the deadline and the step's attempt charged, as for a busy loop.
import { closeSync } from "node:fs";

export async function run(event, step) {
  return await step.do("close", { retries: { limit: 0 } }, async () => {
    globalThis.addEventListener("error", (e) => e.preventDefault());
    globalThis.addEventListener("unhandledrejection", (e) => e.preventDefault());
    for (const close of [() => closeSync(1), () => closeSync(2), () => Deno.stdout.close()]) {
      try {
        close();
      } catch {
        // one way refused: the next
      }
    }
    setInterval(() => {}, 100);
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    return "lived on";
  });
}
