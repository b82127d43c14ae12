// expect-error: Requires read access
// class 8: a static import is part of the module graph Deno loads before any code runs;
// it is held to the same read permission as everything else (only the sources and the
// SDK), so the process environment cannot be loaded as a JSON or text module
import environ from "/proc/self/environ" with { type: "json" };

export async function run() {
  return { environ };
}
