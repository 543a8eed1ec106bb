/**
 * Machine set-up and developer tooling, apart from the product.
 *
 * `deno task setup` (the native TensorFlow library, the Python environment,
 * the pip index, Chromium), `deno task lab`, the headless notebook runner
 * behind `deno task report`, the notebook formatter, and running subprocesses.
 * The product never imports from here.
 *
 * | module | what |
 * | --- | --- |
 * | `browser.ts` | Headless Chromium for the browser tests: finding it, installing Debian's package when set-up… |
 * | `lab.ts` | `deno task lab`: starts JupyterLab on the project with the project's Deno kernel |
 * | `libtensorflow.ts` | Provisioning tfjs-node's native side: libtensorflow and the N-API binding |
 * | `lint.ts` | The project's own `deno lint` rule: functions of at most 80 lines |
 * | `notebook_fmt.ts` | Formats the code cells of notebooks with `deno fmt`, one cell at a time |
 * | `notebooks.ts` | Executes notebooks headlessly with the Deno kernel through nbclient, writing executed copies and… |
 * | `pip_index.ts` | Which Python package index pip should use, and the pip arguments for it |
 * | `proc.ts` | Running other programs (pip, python, node, deno) with their output captured and failures that… |
 * | `python_env.ts` | The project-local Python environment (`.venv/`) with JupyterLab, nbclient and nbconvert, and the… |
 * | `setup.ts` | `deno task setup`: installs everything the project needs, idempotently |
 *
 * @module
 */
export * from "./browser.ts";
export * from "./lab.ts";
export * from "./libtensorflow.ts";
export * from "./lint.ts";
export * from "./notebook_fmt.ts";
export * from "./notebooks.ts";
export * from "./pip_index.ts";
export * from "./proc.ts";
export * from "./python_env.ts";
export * from "./setup.ts";
