// expect-output-without: ESCAPED
// class 5, 15, 16: tenant code writes the runtime's protocol lines itself (Deno.stdout): an
// `idle` for every message number while a step body still works (the engine must not
// take the advance for waiting), a `ret` for every call number yet to come (it must not
// settle a call made later), requests the runtime never made (a step body that does not
// exist, an id that is not a number, a 1 MiB operation name, secrets it has no Secret
// for; numbered far past its own requests: a reply to a forged request numbered like a
// real one settles that one, as the tenant's own code chose). What it forges is only ever
// what its own code could do: the next real step returns its own value.
const encoder = new TextEncoder();
const forge = (message: unknown) => {
  const data = encoder.encode("\x1e" + JSON.stringify(message) + "\n");
  for (let off = 0; off < data.length; ) off += Deno.stdout.writeSync(data.subarray(off));
};

export async function run(event, step) {
  const [slow, quick] = await Promise.all([
    step.do("slow", async () => {
      for (let seq = 0; seq < 2000; seq++) forge({ t: "idle", seq });
      const until = Date.now() + 300; // (under the batch: no yield)
      while (Date.now() < until) { /* still working, after saying it is idle */ }
      return "slow";
    }),
    step.do("quick", async () => "quick"),
  ]);
  for (let call = 0; call < 2000; call++) forge({ t: "ret", call, ok: true, value: "FORGED-RET" });
  forge({ t: "req", id: 900001, op: "do", name: "ghost", config: {}, rollback: null });
  forge({ t: "req", id: { not: "an id" }, op: "secret", name: "git" });
  forge({ t: "req", id: 900002, op: "x".repeat(1 << 20) });
  forge({ t: "req", id: 900003, op: "secret", name: "../../../etc/passwd" });
  const later = await step.do("later", async () => "later");
  const got = { slow, quick, later };
  const wrong = JSON.stringify(got) !== JSON.stringify({ slow: "slow", quick: "quick", later: "later" });
  return wrong ? `ESCAPED ${JSON.stringify(got)}` : got;
}
