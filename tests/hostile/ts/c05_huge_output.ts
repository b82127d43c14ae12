// expect-error: InvalidOutput
// class 5: a 10 MiB step value (under the 16 MiB line the engine reads, over what it keeps)
export async function run(event, step) {
  return await step.do("big", { retries: { limit: 0 } }, async () => "x".repeat(10 * 1024 * 1024));
}
