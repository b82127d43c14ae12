// expect-output-without: ESCAPED
// then-logs-without: Exception in callback
// class 4, 5: protocol lines the engine cannot take as messages: not JSON, JSON that is not
// an object, JSON nested 5,000 deep (a recursive parser's limit), env.log lines whose
// fields are named like the logger's own parameters (`message`, `self`) or hold an integer
// beyond 2^53, output lines of odd types. Each is the tenant's own output or is dropped;
// none escapes the engine's reader (its traceback was printed into the tenant's logs and
// the lines read with it waited), and the run goes on to its real result.
const encoder = new TextEncoder();
const raw = (text: string) => {
  const data = encoder.encode(text);
  for (let off = 0; off < data.length; ) off += Deno.stdout.writeSync(data.subarray(off));
};
const RS = "\x1e";

export async function run(event, step, env) {
  const deep = "[".repeat(5000) + "]".repeat(5000);
  raw(
    [
      RS + "{not json",
      RS + "[1, 2]",
      RS + '"a string"',
      RS + `{"t":"out","stream":"stdout","text":"deep","x":${deep}}`,
      RS + `{"t":"log","level":"info","message":"deep","fields":{"d":${deep}}}`,
      RS + '{"t":"log","level":"info","message":"named","fields":{"message":"m","self":"s"}}',
      RS + '{"t":"log","level":"info","message":"big","fields":{"n":18446744073709551616}}',
      RS + '{"t":"log","level":"info","message":"odd","fields":[1]}',
      RS + '{"t":"out","stream":{"a":1},"text":[1,2],"call":[3]}',
      RS + '{"t":"ret","call":999,"ok":false,"error":[1]}',
      "",
    ].join("\n"),
  );
  env.log.info("after the forged lines", { message: "a field named message", self: "and self" });
  return await step.do("real", async () => {
    raw(RS + '{"t":"log","level":"info","message":"inside","fields":{"message":"m"}}\n');
    return "real";
  });
}
