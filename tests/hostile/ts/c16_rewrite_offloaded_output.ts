// expect-output-without: forged
// next-advance-first-try
// class 16: TypeScript code rewrites every offloaded output in the tenant's store through
// env.db (its own and other instances'), so that a replay would read what it wrote: the
// bytes are checked against the digest in the journal, and a rewritten output is ignored
export async function run(event, step, env) {
  const big = await step.do("big", async () => ({ blob: "x".repeat(40_000) })); // offloaded
  const rewritten = await step.do("rewrite", { retries: { limit: 0 } }, async () => {
    await env.db.execute("UPDATE _tenantflow_outputs SET data = ?", [JSON.stringify({ blob: "forged" })]);
    const [{ n }] = await env.db.query("SELECT count(*) AS n FROM _tenantflow_outputs");
    return n;
  });
  return { rewritten, head: big.blob.slice(0, 5) };
}
