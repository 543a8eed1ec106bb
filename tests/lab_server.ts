/**
 * A real JupyterLab server for the browser tests: the same command as
 * `deno task lab`, on loopback, rooted in a temporary folder, with its own
 * user state (no news or update checks, every cell kept in the page).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { labCommand } from "../lib/tools/lab.ts";
import { stopProcess } from "../lib/tools/proc.ts";

/**
 * Page errors JupyterLab itself throws with the Deno kernel: its debugger
 * sidebar asks for a debugging session the kernel never started.
 */
export const KNOWN_LAB_ERRORS: readonly RegExp[] = [
  /^No active debugger session$/,
];

/** A free TCP port on loopback. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * A fresh JupyterLab user state in `state`: news and update checks off
 * (they would ask the network and put a toast over the page), and every
 * cell kept in the page (no windowing), so a test can read all prompts.
 * Returns its settings folder.
 */
export async function writeLabSettings(state: string): Promise<string> {
  const settings = join(state, "settings");
  const write = async (plugin: string, file: string, value: unknown) => {
    const dir = join(settings, "@jupyterlab", plugin);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, file), JSON.stringify(value));
  };
  await write("apputils-extension", "notification.jupyterlab-settings", {
    fetchNews: "false",
    checkForUpdates: false,
  });
  await write("notebook-extension", "tracker.jupyterlab-settings", {
    windowingMode: "none",
  });
  return settings;
}

/** A running JupyterLab server. */
export interface LabServer {
  /** `http://127.0.0.1:<port>`. */
  base: string;
  /** The login token. */
  token: string;
  /** The header that carries the token. */
  headers: Record<string, string>;
  /** Whether the server has exited. */
  exited(): boolean;
  /** The last lines of its log. */
  logTail(): string;
  /** Shuts its kernels down, then the server; waits for both. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startLab}. */
export interface StartLabOptions {
  /** The folder JupyterLab serves. */
  root: string;
  /** A folder for its user state (workspaces, runtime files). */
  state: string;
  /** Its settings folder ({@linkcode writeLabSettings}). */
  settings: string;
  /** Extra environment for the server and its kernels. */
  env?: Record<string, string>;
}

/** Keeps the last 20,000 characters of a stream, for error messages. */
function tail(stream: ReadableStream<Uint8Array>) {
  let text = "";
  const done = stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write: (chunk) => void (text = (text + chunk).slice(-20_000)),
    }),
  ).catch(() => {});
  return { text: () => text, done };
}

/** Starts the same server as `deno task lab`, rooted in `root`, on loopback. */
export function startLab(options: StartLabOptions): LabServer {
  const port = freePort();
  const token = crypto.randomUUID();
  const lab = labCommand({
    root: options.root,
    args: [
      "--no-browser",
      "--ServerApp.ip=127.0.0.1",
      `--ServerApp.port=${port}`,
      `--IdentityProvider.token=${token}`,
    ],
  });
  assert.ok(lab.args.includes(`--ServerApp.root_dir=${options.root}`));
  const server = new Deno.Command(lab.command, {
    args: lab.args,
    env: {
      ...lab.env,
      ...options.env,
      JUPYTERLAB_SETTINGS_DIR: options.settings,
      JUPYTERLAB_WORKSPACES_DIR: join(options.state, "workspaces"),
      JUPYTER_RUNTIME_DIR: join(options.state, "runtime"),
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = tail(server.stderr);
  let exited = false;
  const status = server.status.then((s) => {
    exited = true;
    return s;
  });
  const base = `http://127.0.0.1:${port}`;
  const headers = { Authorization: `token ${token}` };
  return {
    base,
    token,
    headers,
    exited: () => exited,
    logTail: () => log.text().trim().split("\n").slice(-15).join("\n"),
    stop: async () => {
      if (!exited) {
        await shutDownKernels(base, headers);
        await stopProcess(server).catch(() => {});
      }
      await status;
      await log.done;
    },
  };
}

/** Deletes every kernel through the server's API (best effort). */
async function shutDownKernels(
  base: string,
  headers: Record<string, string>,
): Promise<void> {
  try {
    const res = await fetch(`${base}/api/kernels`, { headers });
    const kernels: { id: string }[] = res.ok ? await res.json() : [];
    if (!res.ok) await res.body?.cancel();
    for (const { id } of kernels) {
      const done = await fetch(`${base}/api/kernels/${id}`, {
        method: "DELETE",
        headers,
      });
      await done.body?.cancel();
    }
  } catch {
    // the server is going away anyway
  }
}

/**
 * Waits until the server answers `/api/status` (by `deadline`, a
 * `Date.now()` time; default three minutes from now); fails with the end of
 * its log if it does not, or if it exits first.
 */
export async function waitUntilUp(
  lab: LabServer,
  deadline: number = Date.now() + 180_000,
): Promise<void> {
  while (Date.now() < deadline && !lab.exited()) {
    try {
      const res = await fetch(`${lab.base}/api/status`, {
        headers: lab.headers,
      });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`JupyterLab did not come up:\n${lab.logTail()}`);
}
