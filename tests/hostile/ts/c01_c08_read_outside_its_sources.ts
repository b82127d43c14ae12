// expect-output-without: ESCAPED
// class 1, 8, 10: Deno may read its sources and the SDK, nothing else. Every way to read a
// file is tried on what an attacker wants: /proc (environ, cmdline, memory, the unix
// sockets), the host's files, this tenant's database and its root-only file, the other
// tenant's data dir, the scratch dir and Deno's cache beside the sources, the engine's
// package beside the SDK: Deno.readFile/open/stat/readDir/realPath/readLink, node:fs,
// fetch(file:), dynamic import as text and JSON, and a Worker doing the same. All refused.
const DEADLINE_MS = 2500;

export async function run(event, step) {
  const other = event.payload.other_data_dir;
  return await step.do("read", { retries: { limit: 0 } }, async () => {
    const here = Deno.cwd(); // <data>/scratch/tenantflow-deno: a path, no content
    const sdk = new URL(".", import.meta.resolve("tenantflow")).pathname;
    const targets = [
      "/proc/self/environ", "/proc/self/cmdline", "/proc/self/maps", "/proc/self/mem",
      `/proc/${Deno.ppid}/environ`, `/proc/${Deno.ppid}/cmdline`, "/proc/1/environ",
      "/proc/net/unix", "/etc/passwd", "/etc/hostname", "/usr/bin/env",
      `${here}/../../tenant.sqlite3`, `${here}/../../root-only.txt`, `${here}/..`, `${here}/cache`,
      `${other}/tenant.sqlite3`, other, `${sdk}../engine/typescript.py`, `${sdk}..`,
      Deno.execPath(),
    ];
    const fs = await import("node:fs");
    const ways: Record<string, (p: string) => unknown> = {
      readFile: (p) => Deno.readFileSync(p),
      open: (p) => Deno.openSync(p).close(),
      stat: (p) => Deno.statSync(p),
      lstat: (p) => Deno.lstatSync(p),
      readDir: (p) => [...Deno.readDirSync(p)],
      realPath: (p) => Deno.realPathSync(p),
      readLink: (p) => Deno.readLinkSync(p),
      nodeRead: (p) => fs.readFileSync(p),
      nodeStat: (p) => fs.statSync(p),
      nodeDir: (p) => fs.readdirSync(p),
    };
    const asyncWays: Record<string, (p: string) => Promise<unknown>> = {
      fetch: (p) => fetch(`file://${p}`).then((r) => r.arrayBuffer()),
      importText: (p) => import(p, { with: { type: "text" } } as any),
      importJson: (p) => import(p, { with: { type: "json" } }),
      importModule: (p) => import(`file://${p}`),
    };
    const escaped: string[] = [];
    const refusals = new Set<string>();
    for (const target of targets) {
      for (const [how, read] of Object.entries(ways)) {
        try {
          read(target);
          escaped.push(`${how} ${target}`);
        } catch (e) {
          refusals.add((e as Error).name);
        }
      }
      for (const [how, read] of Object.entries(asyncWays)) {
        try {
          await Promise.race([read(target), new Promise((_, no) => setTimeout(() => no(new Error("slow")), DEADLINE_MS))]);
          escaped.push(`${how} ${target}`);
        } catch (e) {
          refusals.add((e as Error).name);
        }
      }
    }
    // a Worker has its parent's permissions, no more
    const fromWorker = await new Promise<string>((resolve) => {
      const code = `const got = [];
        for (const p of ${JSON.stringify(targets)}) { try { Deno.readFileSync(p); got.push(p); } catch {} }
        postMessage(got.join(","));`;
      const w = new Worker(`data:text/javascript,${encodeURIComponent(code)}`, { type: "module" });
      w.onmessage = (m) => { resolve(m.data); w.terminate(); };
      w.onerror = (e) => { e.preventDefault(); resolve(""); };
    });
    if (fromWorker) escaped.push(`worker ${fromWorker}`);
    return escaped.length ? `ESCAPED ${escaped.join("; ")}` : { refusedWith: [...refusals].sort() };
  });
}
