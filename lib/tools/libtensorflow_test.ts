import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bindingStatus,
  downloadTensorflowWheel,
  SetupError,
  TENSORFLOW_WHEEL,
  tfjsNodeDir,
} from "./libtensorflow.ts";
import { PROJECT_ROOT } from "../core/paths.ts";

Deno.test("libtensorflow: the installed tfjs-node has a binding and libtensorflow", () => {
  const status = bindingStatus(tfjsNodeDir(PROJECT_ROOT));
  assert.ok(
    status.binding?.endsWith("tfjs_binding.node"),
    String(status.binding),
  );
  assert.equal(status.library, true);
});

Deno.test("libtensorflow: an empty package folder has neither", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(bindingStatus(dir), {
      binding: undefined,
      library: false,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("libtensorflow: a missing local index fails at once, naming it and the wheel", async () => {
  const dest = await Deno.makeTempDir();
  try {
    const error = await downloadTensorflowWheel({
      python: "python3",
      indexes: ["file:///nonexistent/pypi/simple"],
      dest,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof SetupError, String(error));
    assert.match(error.message, /tensorflow-cpu==2\.21\.0/);
    assert.match(
      error.message,
      /file:\/\/\/nonexistent\/pypi\/simple does not exist/,
    );
    assert.match(error.hint, /BRAIN_MRI_PIP_INDEX/);
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
});

Deno.test("libtensorflow: an index without the wheel says the wheel is missing", async () => {
  const root = await Deno.makeTempDir();
  try {
    // A valid but empty PEP 503 index.
    await Deno.mkdir(join(root, "simple", "tensorflow-cpu"), {
      recursive: true,
    });
    await Deno.writeTextFile(
      join(root, "simple", "index.html"),
      "<html></html>",
    );
    await Deno.writeTextFile(
      join(root, "simple", "tensorflow-cpu", "index.html"),
      "<!DOCTYPE html><html><body></body></html>",
    );
    const error = await downloadTensorflowWheel({
      python: "python3",
      indexes: [`file://${root}/simple`],
      dest: join(root, "wheels"),
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof SetupError, String(error));
    assert.equal(
      error.message,
      `${TENSORFLOW_WHEEL} (for libtensorflow) is not in file://${root}/simple`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("libtensorflow: an unreachable index fails fast with the index named", async () => {
  // A loopback port with nothing listening: connection refused at once.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const dest = await Deno.makeTempDir();
  try {
    const url = `http://127.0.0.1:${port}/simple`;
    const error = await downloadTensorflowWheel({
      python: "python3",
      indexes: [url],
      dest,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof SetupError, String(error));
    assert.ok(error.message.includes(url), error.message);
    assert.match(error.message, /tensorflow-cpu==2\.21\.0/);
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
});
