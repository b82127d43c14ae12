// expect-output-without: ESCAPED
// class 17: no network without an egress proxy (none in the local jail, as for a Tenant
// with no spec.sandbox.egress): the runner's port, the host and its API server, cloud
// metadata, DNS, the outside, unix sockets by path and by abstract name, listening,
// WebSocket, node:net/http/dns: all refused before a packet (Deno's net permission),
// and the jail's own network namespace would hold it anyway.
export async function run(event, step) {
  return await step.do("reach", { retries: { limit: 0 } }, async () => {
    const net = await import("node:net");
    const http = await import("node:http");
    const dns = await import("node:dns");
    const slow = () => new Promise((_, no) => setTimeout(() => no(new Error("slow")), 1500));
    const tries: Record<string, () => Promise<unknown>> = {
      runner: () => fetch("http://127.0.0.1:8080/healthz"),
      runnerV6: () => fetch("http://[::1]:8080/healthz"),
      apiServer: () => fetch("https://10.96.0.1/api"),
      hostApi: () => fetch("https://10.246.0.1:6443/version"),
      metadata: () => fetch("http://169.254.169.254/latest/meta-data/"),
      outside: () => fetch("https://example.com/"),
      tcp: async () => Deno.connect({ hostname: "127.0.0.1", port: 8080 }),
      tls: async () => Deno.connectTls({ hostname: "example.com", port: 443 }),
      unixPath: async () => Deno.connect({ transport: "unix", path: "/run/tenantflow/runner.sock" } as any),
      unixAbstract: async () => Deno.connect({ transport: "unix", path: "\0tenantflow-zygote" } as any),
      listen: async () => Deno.listen({ port: 8081 }),
      udp: async () => Deno.listenDatagram({ port: 5353, transport: "udp", hostname: "0.0.0.0" }),
      resolve: () => Deno.resolveDns("kubernetes.default.svc.cluster.local", "A"),
      websocket: () => new Promise((ok, no) => {
        const ws = new WebSocket("ws://127.0.0.1:8080/");
        ws.onopen = () => ok(ws);
        ws.onerror = () => no(new Error("ws error"));
      }),
      nodeNet: () => new Promise((ok, no) => {
        const s = net.connect(8080, "127.0.0.1", () => ok(s));
        s.on("error", no);
      }),
      nodeHttp: () => new Promise((ok, no) => {
        const req = http.get("http://127.0.0.1:8080/healthz", ok);
        req.on("error", no);
      }),
      nodeDns: () => dns.promises.lookup("kubernetes.default"),
    };
    const escaped: string[] = [];
    const refusals = new Set<string>();
    for (const [name, attempt] of Object.entries(tries)) {
      try {
        await Promise.race([attempt(), slow()]);
        escaped.push(name);
      } catch (e) {
        refusals.add((e as Error).name);
      }
    }
    return escaped.length ? `ESCAPED ${escaped.join(", ")}` : { refusedWith: [...refusals].sort() };
  });
}
