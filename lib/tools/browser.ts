/**
 * Headless Chromium for the browser tests: finding it, installing Debian's
 * package when set-up runs with `--browser`, and launching it through
 * `playwright-core`.
 *
 * Playwright's own browser downloads are never used: the browser is
 * `BRAIN_MRI_CHROMIUM` when that names an executable, else Debian's
 * `/usr/bin/chromium`. Every launch gets a fresh temporary profile and, by
 * default, a page that cannot reach anything but loopback, so tests stay
 * hermetic and never wait on an unreachable host.
 *
 * `playwright-core` is loaded only when a browser is launched, so set-up's
 * check stays a fast no-op.
 *
 * @module
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { SetupError } from "./libtensorflow.ts";
import { run } from "./proc.ts";

/** The environment variable naming a Chromium (or Chrome) executable. */
export const CHROMIUM_ENV = "BRAIN_MRI_CHROMIUM";

/** Where Debian's `chromium` package puts the browser. */
export const DEBIAN_CHROMIUM = "/usr/bin/chromium";

/** The flags every launch passes (no sandbox, no GPU, no phoning home). */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const INSTALL_HINT = "install Debian's Chromium as root (`apt-get update && " +
  "apt-get install -y --no-install-recommends chromium`), or set " +
  `${CHROMIUM_ENV} to a Chromium or Chrome executable`;

/** A Chromium that was found. */
export interface ChromiumInfo {
  /** The executable to launch. */
  executable: string;
  /** Where it came from: {@linkcode CHROMIUM_ENV} or Debian's package. */
  source: "env" | "debian";
  /** `--version` output (not asked for an executable named by the env). */
  version: string | null;
}

/** Options for {@linkcode findChromium}. */
export interface FindChromiumOptions {
  /** Environment to read {@linkcode CHROMIUM_ENV} from; default `Deno.env`. */
  env?: Record<string, string | undefined>;
  /** Debian's path; default {@linkcode DEBIAN_CHROMIUM}. */
  debianPath?: string;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the browser: the executable {@linkcode CHROMIUM_ENV} names (taken
 * as is), else Debian's `/usr/bin/chromium` if `chromium --version` works.
 * Returns `null` when there is none; throws {@linkcode SetupError} when
 * {@linkcode CHROMIUM_ENV} is set but names no executable file.
 *
 * @example An executable named by the environment is taken as is
 * ```ts
 * import assert from "node:assert/strict";
 * import { CHROMIUM_ENV, findChromium } from "./browser.ts";
 * import { SetupError } from "./libtensorflow.ts";
 * const named = await findChromium({ env: { [CHROMIUM_ENV]: "/bin/sh" } });
 * assert.deepEqual(named, { executable: "/bin/sh", source: "env", version: null });
 * await assert.rejects(
 *   () => findChromium({ env: { [CHROMIUM_ENV]: "/no/such/chromium" } }),
 *   SetupError,
 * );
 * // Nothing named and nothing at Debian's path: none.
 * assert.equal(await findChromium({ env: {}, debianPath: "/no/such/chromium" }), null);
 * ```
 */
export async function findChromium(
  options: FindChromiumOptions = {},
): Promise<ChromiumInfo | null> {
  const named = options.env
    ? options.env[CHROMIUM_ENV]
    : Deno.env.get(CHROMIUM_ENV);
  if (named !== undefined && named.trim() !== "") {
    if (!isExecutableFile(named)) {
      throw new SetupError(
        `${CHROMIUM_ENV}=${named} is not an executable file`,
        `point ${CHROMIUM_ENV} at a Chromium or Chrome binary, or unset it ` +
          `to use Debian's ${DEBIAN_CHROMIUM}`,
      );
    }
    return { executable: named, source: "env", version: null };
  }
  const debian = options.debianPath ?? DEBIAN_CHROMIUM;
  if (!isExecutableFile(debian)) return null;
  const result = await run(debian, {
    args: ["--version"],
    timeoutMs: 60_000,
  }).catch(() => null);
  const version = result?.stdout.trim().split("\n")[0] ?? "";
  if (!result || result.code !== 0 || !/\d+\.\d+/.test(version)) return null;
  return { executable: debian, source: "debian", version };
}

/** Options for {@linkcode ensureChromium}. */
export interface EnsureChromiumOptions extends FindChromiumOptions {
  /** The `apt-get` to use: a path, or a name looked up on PATH. */
  aptGet?: string;
  /** The user id set-up runs as; default `Deno.uid()`. */
  uid?: number | null;
  /** Progress messages. */
  log?: (message: string) => void;
}

function onPath(command: string): string | null {
  if (isAbsolute(command)) return isExecutableFile(command) ? command : null;
  for (const dir of (Deno.env.get("PATH") ?? "").split(delimiter)) {
    if (dir && isExecutableFile(join(dir, command))) return join(dir, command);
  }
  return null;
}

/** apt-get's ways of saying its package lists are missing or stale. */
const MISSING_LISTS =
  /Unable to locate package|has no installation candidate|404\s+Not Found|Failed to fetch|apt-get update/i;

function tail(text: string, lines = 8): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/**
 * Makes sure a Chromium is there (see {@linkcode findChromium}); when none
 * is, installs Debian's package with `apt-get install -y
 * --no-install-recommends chromium`, running `apt-get update` first only if
 * the install fails for missing package lists. Not root or no `apt-get`: a
 * {@linkcode SetupError} saying what to install.
 *
 * May install a system package, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { ensureChromium } from "./browser.ts";
 * const { chromium, installed } = await ensureChromium({ log: console.error });
 * console.log(chromium.executable, installed);
 * ```
 */
export async function ensureChromium(
  options: EnsureChromiumOptions = {},
): Promise<{ chromium: ChromiumInfo; installed: boolean }> {
  const present = await findChromium(options);
  if (present) return { chromium: present, installed: false };
  const debian = options.debianPath ?? DEBIAN_CHROMIUM;
  const missing = `Chromium is needed for the browser tests: ${CHROMIUM_ENV} ` +
    `is not set and ${debian} is missing or \`${debian} --version\` fails`;
  const uid = options.uid === undefined ? Deno.uid() : options.uid;
  if (uid !== 0) {
    throw new SetupError(
      `${missing}, and set-up is not running as root to install it`,
      INSTALL_HINT,
    );
  }
  const aptGet = onPath(options.aptGet ?? "apt-get");
  if (!aptGet) {
    throw new SetupError(
      `${missing}, and there is no apt-get to install it with`,
      `install Chromium with your system's package manager and set ` +
        `${CHROMIUM_ENV} to its executable`,
    );
  }
  const log = options.log ?? (() => {});
  const apt = (args: string[]) =>
    run(aptGet, {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      timeoutMs: 30 * 60_000,
    });
  const install = ["install", "-y", "--no-install-recommends", "chromium"];
  log(`installing Debian's chromium: ${aptGet} ${install.join(" ")}`);
  let result = await apt(install);
  if (
    result.code !== 0 && MISSING_LISTS.test(result.stderr + result.stdout)
  ) {
    log(`the package lists are missing or stale: ${aptGet} update`);
    const updated = await apt(["update"]);
    if (updated.code !== 0) {
      throw new SetupError(
        `\`apt-get update\` failed:\n${tail(updated.stderr || updated.stdout)}`,
        `make a Debian mirror reachable, then ${INSTALL_HINT}`,
      );
    }
    result = await apt(install);
  }
  if (result.code !== 0) {
    throw new SetupError(
      `\`apt-get ${install.join(" ")}\` failed:\n${
        tail(result.stderr || result.stdout)
      }`,
      INSTALL_HINT,
    );
  }
  const installed = await findChromium(options);
  if (!installed) {
    throw new SetupError(
      `apt-get installed chromium, but \`${debian} --version\` still fails`,
      `run \`${debian} --version\` to see why, or set ${CHROMIUM_ENV}`,
    );
  }
  return { chromium: installed, installed: true };
}

/** Options for {@linkcode launchChromium}. */
export interface LaunchChromiumOptions {
  /** The browser; default the one {@linkcode findChromium} finds. */
  executablePath?: string;
  /** Flags added to {@linkcode CHROMIUM_ARGS}. */
  args?: string[];
  /** Page size; default 1280×900. */
  viewport?: { width: number; height: number };
  /**
   * Let pages reach hosts other than loopback (default false: such requests
   * are aborted and listed in {@linkcode ChromiumSession.blocked}).
   */
  allowNetwork?: boolean;
  /** Milliseconds the launch may take; default 120 000. */
  timeoutMs?: number;
}

/** A running headless Chromium with its own temporary profile. */
export interface ChromiumSession {
  /** The browser context (persistent, on the temporary profile). */
  context: BrowserContext;
  /** The context's first page. */
  page: Page;
  /** The executable that was launched. */
  executablePath: string;
  /** The temporary profile folder (deleted by `close`). */
  userDataDir: string;
  /** The browser's version. */
  version: string;
  /** Requests to non-loopback hosts that were aborted. */
  blocked: string[];
  /** Closes the browser and deletes the profile (safe to call twice). */
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * Launches headless Chromium through `playwright-core` with
 * {@linkcode CHROMIUM_ARGS} and a fresh temporary user-data-dir. Throws a
 * {@linkcode SetupError} when no Chromium is found.
 *
 * Starts a browser, so it is not run by `deno test --doc`.
 *
 * @example
 * ```ts ignore
 * import { launchChromium } from "./browser.ts";
 * const browser = await launchChromium();
 * try {
 *   await browser.page.goto("data:text/html,<h1>hello</h1>");
 *   console.log(await browser.page.textContent("h1")); // "hello"
 * } finally {
 *   await browser.close();
 * }
 * ```
 */
export async function launchChromium(
  options: LaunchChromiumOptions = {},
): Promise<ChromiumSession> {
  let executablePath = options.executablePath;
  if (!executablePath) {
    const found = await findChromium();
    if (!found) {
      throw new SetupError(
        `no Chromium found (${CHROMIUM_ENV} is not set and ${DEBIAN_CHROMIUM} ` +
          "is missing or does not run)",
        `run \`deno run -A lib/tools/setup.ts --browser\`, or ${INSTALL_HINT}`,
      );
    }
    executablePath = found.executable;
  }
  const { chromium } = await import("playwright-core");
  const profile = await Deno.makeTempDir({ prefix: "brain-mri-chromium-" });
  const removeProfile = () =>
    Deno.remove(profile, { recursive: true }).catch(() => {});
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
      viewport: options.viewport ?? { width: 1280, height: 900 },
      timeout: options.timeoutMs ?? 120_000,
    });
  } catch (error) {
    await removeProfile();
    throw new Error(
      `could not launch ${executablePath}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const blocked: string[] = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await context.close().catch(() => {});
    await removeProfile();
  };
  try {
    if (!options.allowNetwork) {
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        const remote =
          (url.protocol === "http:" || url.protocol === "https:") &&
          !LOOPBACK.has(url.hostname);
        if (remote) {
          blocked.push(url.href);
          return route.abort("blockedbyclient");
        }
        return route.continue();
      });
    }
    const page = context.pages()[0] ?? await context.newPage();
    const version = context.browser()?.version() ?? "unknown";
    return {
      context,
      page,
      executablePath,
      userDataDir: profile,
      version,
      blocked,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
