// expect-error: RuntimeExited
// class 7, 20: memory outside the V8 heap's cap (64 MiB ArrayBuffers and WebAssembly
// memories grown to 64 MiB, all touched): the heap limit does not hold them, the sandbox's
// memory limit does; the kernel kills the Deno process, not the worker, and the advance
// ends with a clear error
export async function run(event, step) {
  return await step.do("hoard", { retries: { limit: 0 } }, async () => {
    const hoard: unknown[] = [];
    while (true) {
      hoard.push(new Uint8Array(64 << 20).fill(1));
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 1024 });
      memory.grow(1023); // 64 KiB pages: 64 MiB
      new Uint8Array(memory.buffer).fill(1);
      hoard.push(memory);
    }
  });
}
