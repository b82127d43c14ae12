// expect-error: RuntimeExited
// next-advance-first-try
// class 20: a thread bomb (Deno cannot fork): Workers until something gives (each is a
// thread and an isolate); the advance's 256 descriptors run out first and Deno ends
// itself. Nothing is left for the next advance to trip on: it runs first try.
export async function run(event, step) {
  return await step.do("bomb", { retries: { limit: 0 } }, async () => {
    const workers: Worker[] = [];
    for (let i = 0; i < 2000; i++) {
      workers.push(new Worker("data:text/javascript,setInterval(() => {}, 1000)", { type: "module" }));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return workers.length;
  });
}
