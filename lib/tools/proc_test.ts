import assert from "node:assert/strict";
import { CommandError, run, runOk, stopProcess } from "./proc.ts";

Deno.test("proc: captures output and exit code", async () => {
  const r = await run("sh", { args: ["-c", "echo out; echo err >&2; exit 3"] });
  assert.deepEqual(r, { code: 3, stdout: "out\n", stderr: "err\n" });
});

Deno.test("proc: runOk names the command and shows its stderr", async () => {
  await assert.rejects(
    runOk("sh", { args: ["-c", "echo broken >&2; exit 2"] }),
    (e: Error) =>
      e instanceof CommandError &&
      /`sh -c .*` exited with code 2:\nbroken/.test(e.message),
  );
});

Deno.test("proc: a missing program is a CommandError", async () => {
  await assert.rejects(
    run("no-such-program-xyz"),
    (e: Error) =>
      e instanceof CommandError && /not found on PATH/.test(e.message),
  );
});

Deno.test("proc: env, clearEnv and timeout", async () => {
  const r = await run("sh", {
    args: ["-c", "echo $A-$HOME"],
    env: { A: "1" },
    clearEnv: true,
  });
  assert.equal(r.stdout, "1-\n");
  await assert.rejects(
    run("sleep", { args: ["5"], timeoutMs: 200 }),
    /did not finish within 200 ms/,
  );
});

Deno.test("proc: stopProcess sends SIGTERM, and SIGKILL to a process that ignores it", async () => {
  const polite = new Deno.Command("sleep", { args: ["30"] }).spawn();
  assert.equal(
    (await stopProcess(polite, { graceMs: 10_000 })).signal,
    "SIGTERM",
  );
  // Already exited: the status again, no error.
  assert.equal((await stopProcess(polite)).signal, "SIGTERM");
  const stubborn = new Deno.Command("sh", {
    // An ignored signal stays ignored across exec.
    args: ["-c", 'trap "" TERM; echo ready; exec sleep 30'],
    stdout: "piped",
  }).spawn();
  // Wait until the trap is set before signalling.
  const reader = stubborn.stdout.getReader();
  await reader.read();
  reader.releaseLock();
  await stubborn.stdout.cancel();
  const status = await stopProcess(stubborn, { graceMs: 300 });
  assert.equal(status.signal, "SIGKILL");
});
