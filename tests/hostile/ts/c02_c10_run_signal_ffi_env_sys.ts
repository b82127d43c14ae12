// expect-output-without: ESCAPED
// class 2, 10, 13, 18: no process, no signal, no native code, no environment, no system
// facts: Deno.Command, node:child_process, Deno.kill and process.kill of the worker (its
// parent), pid 1 and the whole group, Deno.dlopen and process.dlopen, Deno.env and
// process.env, hostname/uid/network interfaces, the same through Deno's internal ops
// (Deno[Deno.internal].core.ops), a permission request (no prompt: denied), and V8 flags
// set at run time (node:v8): natives syntax stays off. All refused.
import { setFlagsFromString } from "node:v8";

export async function run(event, step) {
  return await step.do("escape", { retries: { limit: 0 } }, async () => {
    const cp = await import("node:child_process");
    const ops = (Deno as any)[(Deno as any).internal]?.core?.ops ?? {};
    const tries: Record<string, () => unknown> = {
      command: () => new Deno.Command("/bin/sh", { args: ["-c", "id"] }).outputSync(),
      commandSpawn: () => new Deno.Command(Deno.execPath(), { args: ["eval", "1"] }).spawn(),
      execSync: () => cp.execSync("id"),
      spawnSync: () => cp.spawnSync("/bin/sh", ["-c", "id"]).status ?? (() => { throw new Error("no status"); })(),
      killParent: () => Deno.kill(Deno.ppid, "SIGKILL"),
      stopParent: () => Deno.kill(Deno.ppid, "SIGSTOP"),
      killInit: () => Deno.kill(1, "SIGKILL"),
      killGroup: () => Deno.kill(-Deno.pid, "SIGTERM"),
      processKill: () => (globalThis as any).process.kill(Deno.ppid, "SIGSTOP"),
      dlopen: () => Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }),
      processDlopen: () => (globalThis as any).process.dlopen({ exports: {} }, "/lib/x86_64-linux-gnu/libc.so.6"),
      env: () => Deno.env.toObject(),
      envGet: () => Deno.env.get("PATH"),
      envSet: () => Deno.env.set("LD_PRELOAD", "/tmp/x.so"),
      processEnv: () => JSON.stringify((globalThis as any).process.env),
      hostname: () => Deno.hostname(),
      uid: () => Deno.uid(),
      interfaces: () => Deno.networkInterfaces(),
      memory: () => Deno.systemMemoryInfo(),
      opKill: () => ops.op_node_process_kill(Deno.ppid, 19),
      opSetEnv: () => ops.op_set_env("LD_PRELOAD", "/tmp/x.so"),
      opPointer: () => ops.op_ffi_read_u8(ops.op_ffi_ptr_create(0x400000n), 0),
      opSetuid: () => ops.op_node_process_setuid(0),
      opPriority: () => ops.op_node_os_set_priority(Deno.ppid, 19),
      natives: () => { setFlagsFromString("--allow-natives-syntax"); return new Function("return %GetOptimizationStatus(Math.max)")(); },
    };
    const escaped: string[] = [];
    const refusals = new Set<string>();
    for (const [name, attempt] of Object.entries(tries)) {
      try {
        attempt();
        escaped.push(name);
      } catch (e) {
        refusals.add((e as Error).name);
      }
    }
    for (const name of ["run", "ffi", "env", "sys", "write", "net"] as const) {
      const asked = await Deno.permissions.request({ name } as Deno.PermissionDescriptor);
      if (asked.state === "granted") escaped.push(`permission ${name}`);
    }
    return escaped.length ? `ESCAPED ${escaped.join(", ")}` : { refusedWith: [...refusals].sort() };
  });
}
