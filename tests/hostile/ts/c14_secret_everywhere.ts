// expect-output-without: ESCAPED
// then-logs
// class 14: the secret by every output path a TypeScript workflow has: one raw stderr write
// of a line so long that the engine's 64 KiB read ends inside it, where the secret is
// repeated (the rest of that line went out as a line of its own, beginning with the end
// of a secret, which no mask catches); console.log and console.error, env.log's message
// and fields, raw writes to stdout and stderr (in two writes of one line too), a line cut
// at the 4 KiB cap mid-value; then a step that fails with it in its message. Nothing
// leaves unmasked.
const encoder = new TextEncoder();
const raw = (stream: { writeSync(p: Uint8Array): number }, text: string) => {
  const data = encoder.encode(text);
  for (let off = 0; off < data.length; ) off += stream.writeSync(data.subarray(off));
};

export async function run(event, step, env) {
  const secret = event.payload.secret;
  await step.do("print", async () => {
    raw(Deno.stderr, "s".repeat(65536 - 500) + secret.repeat(40) + "\n"); // first: an empty pipe
    console.log(secret);
    console.error(`token=${secret}`);
    console.log("x".repeat(4090) + secret);
    env.log.info(`token ${secret}`, { token: secret, nested: { again: [secret] } });
    raw(Deno.stdout, `${secret}\n`);
    raw(Deno.stdout, secret.slice(0, 10));
    raw(Deno.stdout, `${secret.slice(10)}\n`);
    raw(Deno.stderr, `${secret}\n`);
    raw(Deno.stderr, "t".repeat(4090) + secret + "\n");
    return "printed";
  });
  try {
    await step.do("fail", { retries: { limit: 1, delay: 0 } }, async () => {
      throw new Error(`the server refused token ${secret}`);
    });
  } catch {
    // caught: the journal and the logs still carry the step's error
  }
  return "done";
}
