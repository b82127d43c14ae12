// expect-error: TokenRejected
// class 14: an error message whose 4,096-character cut falls inside the secret (this
// engine has no secrets to mask with): the runner masks the part left at the end
class TokenRejected extends Error {
  override name = "TokenRejected";
}

export async function run(event, step) {
  const secret = event.payload.secret;
  return await step.do("push", { retries: { limit: 0 } }, async () => {
    throw new TokenRejected("x".repeat(4096 - 12) + secret);
  });
}
