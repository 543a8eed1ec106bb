import assert from "node:assert/strict";
import { join } from "node:path";
import { ensurePeerEnv, missingPackages } from "./peer_env.ts";

/** A venv folder as pip leaves it: `bin/python` and `.dist-info` folders. */
async function fakeVenv(distInfos: string[]): Promise<string> {
  const venv = await Deno.makeTempDir({ prefix: "peer-env-test-" });
  await Deno.mkdir(join(venv, "bin"));
  await Deno.writeTextFile(join(venv, "bin", "python"), "");
  const site = join(venv, "lib", "python3.11", "site-packages");
  await Deno.mkdir(site, { recursive: true });
  for (const d of distInfos) await Deno.mkdir(join(site, `${d}.dist-info`));
  return venv;
}

Deno.test("peer_env: missingPackages reads names (normalised) and pinned versions", async () => {
  const venv = await fakeVenv(["tensorflow_cpu-2.21.0", "Pillow-12.3.0"]);
  try {
    assert.deepEqual(
      missingPackages(venv, [
        "tensorflow-cpu==2.21.0",
        "TensorFlow.CPU",
        "pillow",
        "pillow==12.3.0",
      ]),
      [],
    );
    assert.deepEqual(
      missingPackages(venv, ["tensorflow-cpu==2.20.0", "numpy", "pillow"]),
      ["tensorflow-cpu==2.20.0", "numpy"],
    );
    assert.deepEqual(missingPackages(join(venv, "nothing"), ["six"]), ["six"]);
    assert.throws(
      () => missingPackages(venv, ["numpy>=2"]),
      /"numpy>=2" is not a package name or name==version/,
    );
  } finally {
    await Deno.remove(venv, { recursive: true });
  }
});

Deno.test("peer_env: ensurePeerEnv does nothing when every package is there", async () => {
  const venv = await fakeVenv(["numpy-2.4.6", "pillow-12.3.0"]);
  try {
    const python = await ensurePeerEnv({
      venv,
      packages: ["pillow", "numpy==2.4.6"],
      indexes: ["file:///no/such/index"],
      log: (message) => assert.fail(`no work expected, got "${message}"`),
    });
    assert.equal(python, join(venv, "bin", "python"));
  } finally {
    await Deno.remove(venv, { recursive: true });
  }
});
