// expect-error: is not JSON
// class 3: a value that is not plain JSON (a class instance whose toJSON and getters
// would decide what is stored) is refused, not serialised by its own methods
class Sneaky {
  get secret() { return "computed"; }
  toJSON() { return { forged: true }; }
}

export async function run(event, step) {
  return await step.do("sneaky", async () => ({ value: new Sneaky() }));
}
