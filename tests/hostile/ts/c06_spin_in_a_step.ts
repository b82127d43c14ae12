// expect-lost
// class 6: a step body that never yields, in WebAssembly (a `loop br 0`): it holds Deno's
// only thread, so the engine's answer to the step's timeout can never be read; the
// advance's process group is killed at the deadline and the step's attempt charged as a
// StepTimeout (the next advance applies its retry policy)
const SPIN = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 of type 0
  0x07, 0x08, 0x01, 0x04, 0x73, 0x70, 0x69, 0x6e, 0x00, 0x00, // export "spin"
  0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0 end end
]);

export async function run(event, step) {
  return await step.do("spin", { retries: { limit: 0 }, timeout: "2 seconds" }, async () => {
    const { instance } = await WebAssembly.instantiate(SPIN);
    (instance.exports.spin as () => void)();
    return "never";
  });
}
