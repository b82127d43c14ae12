// expect-output-without: ESCAPED
// class 1, 7, 9: Deno writes nothing. Every way to write is tried where it would matter:
// its own sources and import map (code a later advance would run), Deno's cache beside
// them, the scratch and data dirs, /tmp, /dev/shm, the SDK; files, directories, links,
// modes, renames, removals, temp files, node:fs. All refused, and its sources unchanged.
export async function run(event, step) {
  return await step.do("write", { retries: { limit: 0 } }, async () => {
    const here = Deno.cwd(); // <data>/scratch/tenantflow-deno
    const source = new URL(import.meta.url).pathname;
    const dir = source.slice(0, source.lastIndexOf("/"));
    const sdk = new URL(".", import.meta.resolve("tenantflow")).pathname;
    const targets = [
      source, `${dir}/import_map.json`, `${dir}/planted.ts`, `${here}/cache/planted`,
      `${here}/planted`, `${here}/../planted`, `${here}/../../planted`, "/tmp/planted",
      "/dev/shm/planted", `${sdk}tenantflow.ts`, `${sdk}planted.ts`,
    ];
    const fs = await import("node:fs");
    const ways: Record<string, (p: string) => unknown> = {
      write: (p) => Deno.writeTextFileSync(p, "export const planted = 1;\n"),
      append: (p) => Deno.writeTextFileSync(p, "//x\n", { append: true }),
      create: (p) => Deno.createSync(p),
      truncate: (p) => Deno.truncateSync(p, 0),
      mkdir: (p) => Deno.mkdirSync(`${p}.d`),
      remove: (p) => Deno.removeSync(p),
      rename: (p) => Deno.renameSync(p, `${p}.moved`),
      chmod: (p) => Deno.chmodSync(p, 0o777),
      utime: (p) => Deno.utimeSync(p, 0, 0),
      symlink: (p) => Deno.symlinkSync("/etc/passwd", `${p}.link`),
      link: (p) => Deno.linkSync("/etc/passwd", `${p}.hard`),
      copy: (p) => Deno.copyFileSync(source, `${p}.copy`),
      nodeWrite: (p) => fs.writeFileSync(p, "x"),
      nodeAppend: (p) => fs.appendFileSync(p, "x"),
    };
    const escaped: string[] = [];
    const refusals = new Set<string>();
    for (const target of targets) {
      for (const [how, write] of Object.entries(ways)) {
        try {
          write(target);
          escaped.push(`${how} ${target}`);
        } catch (e) {
          refusals.add((e as Error).name);
        }
      }
    }
    for (const temp of [() => Deno.makeTempFileSync(), () => Deno.makeTempDirSync({ dir: here })]) {
      try {
        escaped.push(`temp ${temp()}`);
      } catch (e) {
        refusals.add((e as Error).name);
      }
    }
    return escaped.length ? `ESCAPED ${escaped.join("; ")}` : { refusedWith: [...refusals].sort() };
  });
}
