// expect-output-without: forged
// next-advance-first-try
// class 16: TypeScript code writes the tenant's step-results store through env.db to make
// other instances recall a result for a step they never ran: it learns its own run's key
// from the row its first step left, then INSERTs rows saying "forged" for step 'ok' (the
// harness's benign program) in the next fifty runs and rewrites every row there. It has
// no way to the runner (no socket, no descriptor), which vouches only for the run the
// operator named: the next instance's step runs for real and returns 'fine'.
export async function run(event, step, env) {
  await step.do("first", async () => "first");
  const planted = await step.do("plant", { retries: { limit: 0 } }, async () => {
    const rows = await env.db.query("SELECT run FROM _tenantflow_step_results WHERE step = 'first'");
    const own = String(rows[0]?.run ?? "uid:uid-0");
    const cut = own.lastIndexOf("-");
    const prefix = own.slice(0, cut);
    const n = Number(own.slice(cut + 1));
    const forged = new TextEncoder().encode(JSON.stringify("forged"));
    await env.db.execute("UPDATE _tenantflow_step_results SET data = ?", [JSON.stringify("forged")]);
    for (let k = 1; k <= 50; k++) {
      await env.db.execute(
        "INSERT OR REPLACE INTO _tenantflow_step_results VALUES (?, ?, ?, 9e9)",
        [`${prefix}-${n + k}`, "ok", JSON.stringify("forged")],
      );
    }
    return forged.length;
  });
  return { planted };
}
