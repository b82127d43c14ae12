// expect-output-without: ESCAPED
// victim-during
// class 20: four Workers spin (two per core of a CI machine) for 2 s while another tenant
// advances: CPU is shared by sandbox (the jail's cpu cgroup), not by thread, so the other
// tenant's advance stays prompt
export async function run(event, step) {
  return await step.do("spin", async () => {
    const workers: Worker[] = [];
    for (let i = 0; i < 4; i++) {
      workers.push(new Worker("data:text/javascript,while (true) {}", { type: "module" }));
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (const w of workers) w.terminate();
    return workers.length;
  });
}
