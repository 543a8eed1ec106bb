import assert from "node:assert/strict";
import {
  configuredIndexes,
  indexProblem,
  isolatedPipEnv,
  parsePipConfig,
  pipIndexArgs,
} from "./pip_index.ts";

Deno.test("parsePipConfig: index-url first, then extra-index-urls, no repeats", () => {
  const text = [
    ":env:.default-timeout='180'",
    "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
    "global.find-links='/opt/wheels'",
    "user.index-url='https://mirror.example/simple'",
    "site.extra-index-url='file:///opt/pypi/simple'",
  ].join("\n");
  assert.deepEqual(parsePipConfig(text), [
    "https://mirror.example/simple",
    "file:///opt/pypi/simple",
    "file:///opt/pypi-more/simple",
  ]);
  assert.deepEqual(parsePipConfig(""), []);
});

Deno.test("pipIndexArgs: exactly the given indexes, or pip's default", () => {
  assert.deepEqual(pipIndexArgs([]), []);
  const args = pipIndexArgs(["file:///a", "file:///b"]);
  assert.deepEqual(args.slice(0, 4), [
    "--index-url",
    "file:///a",
    "--extra-index-url",
    "file:///b",
  ]);
  assert.ok(args.includes("--retries"));
});

Deno.test("indexProblem: a missing file index is named; others pass", () => {
  assert.equal(
    indexProblem("file:///no/such/index/simple"),
    "the local index file:///no/such/index/simple does not exist",
  );
  assert.equal(indexProblem("file:///"), undefined);
  assert.equal(indexProblem("https://pypi.org/simple"), undefined);
});

Deno.test("configuredIndexes: BRAIN_MRI_PIP_INDEX overrides everything", async () => {
  assert.deepEqual(
    await configuredIndexes({
      env: { BRAIN_MRI_PIP_INDEX: "file:///x file:///y" },
    }),
    ["file:///x", "file:///y"],
  );
});

Deno.test("configuredIndexes: PIP_INDEX_URL from the environment is used", async () => {
  const urls = await configuredIndexes({
    env: { PIP_INDEX_URL: "file:///from/env/simple" },
  });
  assert.equal(urls[0], "file:///from/env/simple");
});

Deno.test("isolatedPipEnv: switches pip's config off and drops index variables", () => {
  const env = isolatedPipEnv({
    PATH: "/usr/bin",
    PIP_FIND_LINKS: "/opt/wheels",
    PIP_EXTRA_INDEX_URL: "file:///x",
    PIP_CERT: "/etc/ssl/cert.pem",
  });
  assert.deepEqual(env, {
    PATH: "/usr/bin",
    PIP_CERT: "/etc/ssl/cert.pem",
    PIP_CONFIG_FILE: "/dev/null",
  });
});
