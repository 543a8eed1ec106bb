import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CHROMIUM_ENV,
  DEBIAN_CHROMIUM,
  ensureChromium,
  findChromium,
  launchChromium,
} from "./browser.ts";
import { SetupError } from "./libtensorflow.ts";

/** Writes an executable shell script and returns its path. */
async function script(dir: string, name: string, body: string) {
  const path = join(dir, name);
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("browser: BRAIN_MRI_CHROMIUM naming an executable wins, as is", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // It is taken without running it: this one would fail `--version`.
    const named = await script(dir, "my-chrome", "exit 3");
    const debian = await script(dir, "chromium", 'echo "Chromium 1.2.3"');
    const found = await findChromium({
      env: { [CHROMIUM_ENV]: named },
      debianPath: debian,
    });
    assert.deepEqual(found, {
      executable: named,
      source: "env",
      version: null,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: BRAIN_MRI_CHROMIUM naming no executable is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const plain = join(dir, "not-executable");
    await Deno.writeTextFile(plain, "");
    for (const named of [plain, dir, join(dir, "missing")]) {
      await assert.rejects(
        findChromium({ env: { [CHROMIUM_ENV]: named } }),
        (e: unknown) =>
          e instanceof SetupError &&
          e.message === `${CHROMIUM_ENV}=${named} is not an executable file`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: Debian's chromium counts only when --version works", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = await script(
      dir,
      "good",
      '[ "$1" = --version ] && echo "Chromium 150.0.7871.100 built on Debian" || exit 2',
    );
    assert.deepEqual(await findChromium({ env: {}, debianPath: good }), {
      executable: good,
      source: "debian",
      version: "Chromium 150.0.7871.100 built on Debian",
    });
    const failing = await script(dir, "failing", "echo broken >&2; exit 1");
    assert.equal(await findChromium({ env: {}, debianPath: failing }), null);
    const silent = await script(dir, "silent", "exit 0");
    assert.equal(await findChromium({ env: {}, debianPath: silent }), null);
    const missing = join(dir, "missing");
    assert.equal(await findChromium({ env: {}, debianPath: missing }), null);
    // An empty variable is the same as none.
    assert.equal(
      await findChromium({ env: { [CHROMIUM_ENV]: " " }, debianPath: missing }),
      null,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: ensureChromium is a no-op when a browser is there", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const named = await script(dir, "chrome", "exit 0");
    const log: string[] = [];
    const result = await ensureChromium({
      env: { [CHROMIUM_ENV]: named },
      // Would fail if reached: not root, no apt-get.
      uid: 1000,
      aptGet: join(dir, "no-apt-get"),
      log: (m) => log.push(m),
    });
    assert.deepEqual(result, {
      chromium: { executable: named, source: "env", version: null },
      installed: false,
    });
    assert.deepEqual(log, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: without a browser, not root or no apt-get says what to install", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "chromium");
    await assert.rejects(
      ensureChromium({ env: {}, debianPath: missing, uid: 1000 }),
      (e: unknown) =>
        e instanceof SetupError && /not running as root/.test(e.message) &&
        e.message.includes(missing) &&
        /apt-get install -y --no-install-recommends chromium/.test(e.hint) &&
        e.hint.includes(CHROMIUM_ENV),
    );
    await assert.rejects(
      ensureChromium({
        env: {},
        debianPath: missing,
        uid: 0,
        aptGet: join(dir, "apt-get"),
      }),
      (e: unknown) =>
        e instanceof SetupError && /no apt-get/.test(e.message) &&
        e.hint.includes(CHROMIUM_ENV),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: ensureChromium installs with apt-get, updating the lists only when they are missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const chromium = join(dir, "chromium");
    const calls = join(dir, "calls");
    const lists = join(dir, "lists");
    // A stand-in for apt-get: `install` fails like apt-get does without
    // package lists until `update` has run, then "installs" the browser.
    const aptGet = await script(
      dir,
      "apt-get",
      `echo "$DEBIAN_FRONTEND $*" >> "${calls}"
case "$1" in
  update) touch "${lists}" ;;
  install)
    if [ ! -e "${lists}" ]; then
      echo "E: Unable to locate package chromium" >&2; exit 100
    fi
    printf '#!/bin/sh\\necho "Chromium 150.0.1"\\n' > "${chromium}"
    chmod +x "${chromium}" ;;
esac`,
    );
    const log: string[] = [];
    const options = {
      env: {},
      debianPath: chromium,
      uid: 0,
      aptGet,
      log: (m: string) => log.push(m),
    };
    const first = await ensureChromium(options);
    assert.deepEqual(first, {
      chromium: {
        executable: chromium,
        source: "debian",
        version: "Chromium 150.0.1",
      },
      installed: true,
    });
    const install =
      "noninteractive install -y --no-install-recommends chromium";
    assert.deepEqual((await Deno.readTextFile(calls)).trim().split("\n"), [
      install,
      "noninteractive update",
      install,
    ]);
    assert.equal(log.length, 2);
    // With lists present the install runs once, without an update.
    await Deno.remove(chromium);
    await Deno.remove(calls);
    assert.equal((await ensureChromium(options)).installed, true);
    assert.deepEqual((await Deno.readTextFile(calls)).trim().split("\n"), [
      install,
    ]);
    // The second time round nothing runs at all.
    await Deno.remove(calls);
    assert.equal((await ensureChromium(options)).installed, false);
    assert.equal(await Deno.stat(calls).catch(() => null), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: an apt-get failure that is not about lists is reported, without an update", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const calls = join(dir, "calls");
    const aptGet = await script(
      dir,
      "apt-get",
      `echo "$*" >> "${calls}"
echo "E: Could not get lock /var/lib/dpkg/lock-frontend" >&2; exit 100`,
    );
    await assert.rejects(
      ensureChromium({
        env: {},
        debianPath: join(dir, "chromium"),
        uid: 0,
        aptGet,
      }),
      (e: unknown) =>
        e instanceof SetupError && /Could not get lock/.test(e.message) &&
        /apt-get install/.test(e.hint),
    );
    assert.deepEqual((await Deno.readTextFile(calls)).trim().split("\n"), [
      "install -y --no-install-recommends chromium",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("browser: this machine has a Chromium (set-up --browser installs it)", async () => {
  const found = await findChromium();
  assert.ok(
    found,
    `no Chromium: run \`deno run -A lib/tools/setup.ts --browser\` (${DEBIAN_CHROMIUM})`,
  );
});

Deno.test("browser: headless Chromium renders a loopback page, offline, on a fresh profile", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/answer"
        ? new Response("42")
        : new Response(
          "<!doctype html><title>t</title><h1 id=h></h1><script>" +
            "fetch('/answer').then((r) => r.text())" +
            ".then((t) => { document.getElementById('h').textContent = t; });" +
            "</script>",
          { headers: { "content-type": "text/html" } },
        ),
  );
  const browser = await launchChromium();
  try {
    const { page } = browser;
    assert.match(browser.version, /^\d+\.\d+/);
    assert.match(browser.userDataDir, /brain-mri-chromium-/);
    assert.ok((await Deno.stat(browser.userDataDir)).isDirectory);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    await page.waitForFunction(
      "document.getElementById('h').textContent === '42'",
    );
    // A request to a host other than loopback is aborted, not waited for.
    const remote = await page.evaluate(
      "fetch('http://example.invalid/x', { mode: 'no-cors' })" +
        ".then(() => 'reached', () => 'aborted')",
    );
    assert.equal(remote, "aborted");
    assert.deepEqual(browser.blocked, ["http://example.invalid/x"]);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await browser.close(); // a second close is harmless
    await server.shutdown();
  }
  assert.equal(await Deno.stat(browser.userDataDir).catch(() => null), null);
});
