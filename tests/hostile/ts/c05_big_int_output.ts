// expect-error: beyond ±2^53
// class 5: an integer the API server's JSON would round (2^64, a finite JavaScript number)
export async function run(event, step) {
  return await step.do("big", { retries: { limit: 0 } }, async () => 2 ** 64);
}
