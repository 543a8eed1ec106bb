/**
 * The foundations every stage stands on.
 *
 * TensorFlow loading, seeded randomness, project paths, atomic writes, the
 * command-line helper, the project's defaults and notebook parameters,
 * versions, contrast equalisation of grey images (CLAHE), and the display primitives (HTML tables, Plotly figures, image
 * grids) that the stages return to a notebook. Imports nothing from the other
 * folders.
 *
 * | module | what |
 * | --- | --- |
 * | `atomic.ts` | Writing files atomically and durably: to a temporary file flushed to disk, then a rename; stale temporary files cleared |
 * | `clahe.ts` | Contrast-limited adaptive histogram equalisation, as OpenCV computes it: an optional preprocessing step |
 * | `cli.ts` | Command lines declared once: flags with type, default and help, the usage generated from them |
 * | `defaults.ts` | The project's defaults, in one place, read by the tools, `trainModel`, the notebooks and the docs |
 * | `display.ts` | Rich display objects for the Deno Jupyter kernel |
 * | `image_grid.ts` | Grids of scans for notebooks: each image encoded as PNG with sharp and laid out in an HTML grid… |
 * | `notebook_network.ts` | The network notebook 02 builds, handed to notebook 03: saved untrained into the models folder, loaded to train |
 * | `params.ts` | Notebook and run parameters: the notebooks' constants with environment overrides, run folder names that follow the settings, the run notebook 03 trained last |
 * | `paths.ts` | The one module that knows where things live |
 * | `plot.ts` | Plotly figures as notebook display objects |
 * | `random.ts` | Seeded randomness |
 * | `text.ts` | Text and values from outside (file names, class names, client headers, JSON from files) made safe to check and print |
 * | `tf.ts` | The one module that loads TensorFlow |
 * | `versions.ts` | Versions of everything that shapes a result, for manifests and the setup check |
 *
 * @module
 */
export * from "./atomic.ts";
export * from "./clahe.ts";
export * from "./cli.ts";
export * from "./defaults.ts";
export * from "./display.ts";
export * from "./image_grid.ts";
export * from "./notebook_network.ts";
export * from "./params.ts";
export * from "./paths.ts";
export * from "./plot.ts";
export * from "./random.ts";
export * from "./text.ts";
export * from "./tf.ts";
export * from "./versions.ts";
