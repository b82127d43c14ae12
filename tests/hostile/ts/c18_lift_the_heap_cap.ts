// expect-output-without: ESCAPED
// class 18: limits are set from outside. Tenant code raises the V8 heap's cap from inside
// (node:v8 setFlagsFromString needs no permission) and turns on natives syntax; V8's flags
// were frozen when it started: neither this isolate's heap limit nor that of a Worker
// started afterwards (a new isolate, which reads the flags) grows, and `%` calls stay a
// syntax error
import { getHeapStatistics, setFlagsFromString } from "node:v8";

export async function run(event, step) {
  return await step.do("lift", { retries: { limit: 0 } }, async () => {
    const before = getHeapStatistics().heap_size_limit;
    for (const flag of ["--max-old-space-size=1000000", "--max-heap-size=1000000", "--allow-natives-syntax"]) {
      try {
        setFlagsFromString(flag);
      } catch {
        // refused outright: as good
      }
    }
    const after = getHeapStatistics().heap_size_limit;
    const worker = await new Promise<number>((resolve) => {
      const code = 'import { getHeapStatistics } from "node:v8"; postMessage(getHeapStatistics().heap_size_limit);';
      const w = new Worker(`data:text/javascript,${encodeURIComponent(code)}`, { type: "module" });
      w.onmessage = (m) => { resolve(m.data); w.terminate(); };
      w.onerror = (e) => { e.preventDefault(); resolve(0); };
    });
    let natives = "refused";
    try {
      natives = String(new Function("return %GetHeapUsage()")());
    } catch {
      // a SyntaxError: natives syntax is off
    }
    const grown = after > before || worker > before || natives !== "refused";
    return grown ? `ESCAPED ${JSON.stringify({ before, after, worker, natives })}` : { before, after, worker };
  });
}
