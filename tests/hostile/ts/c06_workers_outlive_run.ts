// expect-output-without: ESCAPED
// twice
// class 6, 20: Workers that spin forever, left running when run() returns: they are
// threads of the advance's Deno process, which is killed as the advance ends, so nothing
// of it spins on (the harness then times another tenant's advance)
export async function run(event, step) {
  const started = await step.do("start", async () => {
    for (let i = 0; i < 4; i++) new Worker("data:text/javascript,while (true) {}", { type: "module" });
    return 4;
  });
  return { started };
}
