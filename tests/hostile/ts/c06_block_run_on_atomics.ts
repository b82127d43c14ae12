// expect-lost
// class 6: run() itself blocks Deno's thread without using CPU (Atomics.wait on a value that
// never changes; the CPU limit never fires): only the advance's deadline ends it
export async function run(event, step) {
  await step.do("first", async () => "first");
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  return "never";
}
