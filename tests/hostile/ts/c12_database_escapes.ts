// expect-output-without: ESCAPED
// class 12: env.db from TypeScript is the same guarded database as Python's: attaching the
// other tenant's database (or any file), VACUUM INTO a file, loading an extension,
// pragmas that would change where or how it writes: all refused
export async function run(event, step, env) {
  const other = event.payload.other_data_dir;
  return await step.do("escape", { retries: { limit: 0 } }, async () => {
    const tries = [
      `ATTACH DATABASE '${other}/tenant.sqlite3' AS other`,
      "ATTACH DATABASE '/tmp/elsewhere.sqlite3' AS elsewhere",
      "ATTACH DATABASE 'file:other?mode=memory' AS mem",
      "VACUUM INTO '/tmp/copy.sqlite3'",
      "SELECT load_extension('/tmp/evil.so')",
      "PRAGMA journal_mode = OFF",
      "PRAGMA writable_schema = ON",
      "PRAGMA temp_store_directory = '/tmp'",
    ];
    const escaped: string[] = [];
    const refusals = new Set<string>();
    for (const sql of tries) {
      try {
        await env.db.execute(sql);
        escaped.push(sql);
      } catch (e) {
        refusals.add((e as Error).name);
      }
    }
    return escaped.length ? `ESCAPED ${escaped.join("; ")}` : { refusedWith: [...refusals].sort() };
  });
}
