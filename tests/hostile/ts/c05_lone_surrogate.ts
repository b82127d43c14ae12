// expect-error: lone surrogate
// class 5: a string the API server would rewrite (JSON.stringify escapes it; it still
// arrives as a lone surrogate)
export async function run(event, step) {
  return await step.do("surrogate", { retries: { limit: 0 } }, async () => "a\ud800b");
}
