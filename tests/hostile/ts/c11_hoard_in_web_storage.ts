// expect-output-without: ESCAPED
// twice
// class 7, 11: web storage (localStorage, the Cache API) needs no permission in Deno and is
// kept in Deno's cache directory, which outlives the advance (the transpile cache is kept
// between advances): a store outside env.db and the journal that every later advance of
// every instance would find and no replay could reproduce, written by code that may write
// nothing. Round 1 stores into both (any refusal is fine); round 2 must find nothing.
export async function run(event, step) {
  return await step.do("hoard", async () => {
    const found: string[] = [];
    try {
      const kept = localStorage.getItem("planted");
      if (kept !== null) found.push(`localStorage ${kept}`);
      localStorage.setItem("planted", event.instanceId);
    } catch {
      // refused: nothing kept
    }
    try {
      const cache = await caches.open("planted");
      const kept = await cache.match("https://planted.invalid/");
      if (kept) found.push(`caches ${await kept.text()}`);
      await cache.put("https://planted.invalid/", new Response(event.instanceId));
    } catch {
      // refused: nothing kept
    }
    return found.length ? `ESCAPED ${found.join(", ")}` : "nothing kept";
  });
}
