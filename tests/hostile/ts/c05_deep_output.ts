// expect-error: nested deeper
// class 5: a step value nested 1,500 deep: deep enough that the engine's JSON parser could
// not read the line that carried it (the result was lost, the step hung to its timeout),
// shallow enough for the runtime's own walk. It is refused where it is returned.
export async function run(event, step) {
  return await step.do("deep", { retries: { limit: 0 } }, async () => {
    let value: unknown = [];
    for (let i = 0; i < 1500; i++) value = [value];
    return value;
  });
}
