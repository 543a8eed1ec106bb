import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LAB_CLI, labArgs, labCommand } from "./lab.ts";
import { PROJECT_ROOT } from "../core/paths.ts";
import { run, stopProcess } from "./proc.ts";
import { usage } from "../core/cli.ts";

/** Sends one execute_request and resolves with the text/plain result. */
function executeOverWebsocket(url: string, code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const msgId = crypto.randomUUID();
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error("no execute_result within 120 s"));
    }, 120_000);
    ws.onerror = (e) => {
      clearTimeout(timer);
      reject(new Error(`websocket error: ${(e as ErrorEvent).message}`));
    };
    ws.onopen = () =>
      ws.send(JSON.stringify({
        header: {
          msg_id: msgId,
          msg_type: "execute_request",
          session: crypto.randomUUID(),
          username: "test",
          date: new Date().toISOString(),
          version: "5.3",
        },
        parent_header: {},
        metadata: {},
        content: {
          code,
          silent: false,
          store_history: true,
          user_expressions: {},
          allow_stdin: false,
          stop_on_error: true,
        },
        channel: "shell",
        buffers: [],
      }));
    ws.onmessage = (event) => {
      const msg = JSON.parse(String(event.data));
      if (msg.parent_header?.msg_id !== msgId) return;
      if (msg.msg_type === "execute_result") {
        clearTimeout(timer);
        ws.close();
        resolve(String(msg.content.data["text/plain"]));
      } else if (msg.msg_type === "error") {
        clearTimeout(timer);
        ws.close();
        reject(new Error(`${msg.content.ename}: ${msg.content.evalue}`));
      }
    };
  });
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("labCommand serves the project root unless told another folder", () => {
  const project = labCommand({ args: ["--no-browser"] });
  assert.ok(project.args.includes(`--ServerApp.root_dir=${PROJECT_ROOT}`));
  assert.equal(project.args.at(-1), "--no-browser");
  const other = labCommand({ root: "/tmp/elsewhere" });
  assert.ok(other.args.includes("--ServerApp.root_dir=/tmp/elsewhere"));
  assert.ok(!other.args.includes(`--ServerApp.root_dir=${PROJECT_ROOT}`));
  assert.equal(other.command, project.command);
});

Deno.test("lab: everything after -- goes to JupyterLab; before it, only --help", async () => {
  // `deno task lab -- --no-browser --port 8899` gives these arguments.
  assert.deepEqual(labArgs(["--", "--no-browser", "--port", "8899"]), {
    own: [],
    jupyter: ["--no-browser", "--port", "8899"],
  });
  assert.deepEqual(labArgs(["--", "--", "x"]), {
    own: [],
    jupyter: ["--", "x"],
  });
  assert.deepEqual(labArgs(["-h", "--", "y"]), { own: ["-h"], jupyter: ["y"] });
  assert.deepEqual(labArgs([]), { own: [], jupyter: [] });
  assert.deepEqual(labArgs(["--no-browser", "--port", "8899"]), {
    own: [],
    jupyter: ["--no-browser", "--port", "8899"],
  });
  // --help is the lab's own; any other flag is JupyterLab's, which names an
  // unknown one itself (exit 2) before starting anything.
  const script = fileURLToPath(new URL("./lab.ts", import.meta.url));
  const help = await run(Deno.execPath(), {
    args: ["run", "-A", script, "--help"],
  });
  assert.equal(help.code, 0, help.stderr);
  assert.equal(help.stdout, `${usage(LAB_CLI)}\n`);
  assert.match(help.stdout, /Every argument after `--` goes to JupyterLab/);
  const bad = await run(Deno.execPath(), {
    args: ["run", "-A", script, "--no-such-flag"],
  });
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /unrecognized arguments: --no-such-flag/);
});

Deno.test("lab: JupyterLab starts on the project and runs code in the Deno kernel", async () => {
  const port = freePort();
  const token = crypto.randomUUID();
  const { command, args, env } = labCommand({
    args: [
      "--no-browser",
      "--ServerApp.ip=127.0.0.1",
      `--ServerApp.port=${port}`,
      `--IdentityProvider.token=${token}`,
    ],
  });
  assert.ok(args.includes(`--ServerApp.root_dir=${PROJECT_ROOT}`));
  const child = new Deno.Command(command, {
    args,
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  const headers = { Authorization: `token ${token}` };
  try {
    let specs:
      | { kernelspecs: Record<string, { spec: { language: string } }> }
      | undefined;
    for (let i = 0; i < 240 && !specs; i++) {
      try {
        const res = await fetch(`${base}/api/kernelspecs`, { headers });
        if (res.ok) specs = await res.json();
        else await res.body?.cancel();
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.ok(specs, "JupyterLab answered");
    assert.equal(specs.kernelspecs.deno.spec.language, "typescript");
    // Start a Deno kernel through the server and see it come up.
    const started = await fetch(`${base}/api/kernels`, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "deno" }),
    });
    assert.equal(started.status, 201);
    const kernel = await started.json();
    // Run a cell in it over the kernel websocket, as JupyterLab does.
    const result = await executeOverWebsocket(
      `ws://127.0.0.1:${port}/api/kernels/${kernel.id}/channels?token=${token}`,
      'import { backendName } from "@brain/core/tf.ts";\nbackendName()',
    );
    assert.match(result, /tensorflow/);
    const res = await fetch(`${base}/lab`, { headers });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /JupyterLab/);
  } finally {
    // JupyterLab can hang on SIGTERM while a kernel is still starting:
    // SIGKILL after a minute, so the test never waits forever.
    await stopProcess(child);
  }
});
