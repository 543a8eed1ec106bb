/**
 * Preprocessing benchmark: the project's pipeline against Python/PIL doing
 * the same job (decode → grayscale → resize to size×size → uint8) on the
 * same files, in the same process tree.
 *
 * ```sh
 * deno run -A bench/preprocess.ts [--data DIR] [--limit N] [--size 128]
 *   [--repeat 3] [--procs 2] [--only a,b,...]
 * ```
 *
 * Every flag is declared in {@linkcode PREPROCESS_CLI} (`--help` prints
 * them). `--data` defaults to the `Training/` folder of the project's dataset
 * root (`BRAIN_MRI_DATA`, else `data/`).
 *
 * Variants (each run `--repeat` times, interleaved, so load from other
 * processes hits all of them alike; best, median and worst are reported):
 *
 * | name          | what                                                                  |
 * | ------------- | --------------------------------------------------------------------- |
 * | `ours-first`  | `loadImages` with an empty cache: hash + decode + write the pack      |
 * | `ours-decode` | `preprocessFiles`: decode only (default threads: one per core)        |
 * | `ours-1core`  | `preprocessFiles` in this thread only                                  |
 * | `ours-full`   | `preprocessFiles` with `shrinkOnLoad: false` (full-size JPEG decode)   |
 * | `ours-cached` | `loadImages` again with the warm cache                                 |
 * | `sharp-only`  | `preprocessFiles` with `decoder: "sharp"` for JPEGs too               |
 * | `pil-full-P`  | PIL: open, convert("L"), resize BILINEAR; P processes                 |
 * | `pil-draft-P` | PIL with `im.draft("L", (size, size))` first (DCT-scaled luma decode) |
 *
 * Equal work: `ours-decode` (DCT-scaled luma decode, like draft) pairs with
 * `pil-draft-P`; `ours-full` (full-size decode) pairs with `pil-full-P`.
 *
 * P is 1 and `--procs`. Before timing, every file is read once, so the OS page
 * cache is warm for every variant alike ("first run" means nothing of ours is
 * cached, not a cold disk). Timings start after imports (Deno and Python) and
 * include worker / process-pool start-up.
 *
 * The Python side runs from `.cache/bench-venv`, created with Pillow and
 * NumPy from the project's pip index (bench/peer_env.ts) if missing.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { discoverDataset, type ImageFile } from "../lib/data/dataset.ts";
import { loadImages } from "../lib/data/image_cache.ts";
import { preprocessFiles } from "../lib/data/preprocess.ts";
import { runOk } from "../lib/tools/proc.ts";
import { type FlagValues, runCli, UsageError } from "../lib/core/cli.ts";
import { DEFAULTS } from "../lib/core/defaults.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { benchDataset, evenlySpaced, wrapWords } from "./bench_util.ts";

/** Every variant, `P` standing for `--procs`. */
const VARIANTS = [
  "ours-first",
  "ours-decode",
  "ours-1core",
  "ours-full",
  "ours-cached",
  "sharp-only",
  "pil-full-1",
  "pil-full-P",
  "pil-draft-1",
  "pil-draft-P",
];

/** The benchmark's command line: every flag with its type, default and help. */
export const PREPROCESS_CLI = {
  command: "deno run -A bench/preprocess.ts",
  summary:
    "Preprocessing speed: the project's pipeline against Python/PIL doing\n" +
    "the same job (decode → grayscale → resize → uint8) on the same files.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "Training/ of BRAIN_MRI_DATA, else of data/",
      help: "folder of class folders",
    },
    limit: {
      type: "integer",
      help: "use N files, evenly spaced over the sorted list",
    },
    size: { type: "integer", default: DEFAULTS.imageSize, help: "output side" },
    repeat: { type: "integer", default: 3, help: "runs per variant" },
    procs: {
      type: "integer",
      default: 2,
      help: "PIL processes for the parallel PIL variants",
    },
    only: {
      type: "string",
      value: "LIST",
      defaultText: "all",
      help: wrapWords(`comma-separated variants: ${VARIANTS.join(", ")}`),
    },
  },
} as const;

interface Flags {
  data: string;
  limit?: number;
  size: number;
  repeat: number;
  procs: number;
  only?: string[];
}

function checkFlags(values: FlagValues<typeof PREPROCESS_CLI>): Flags {
  const atLeastOne = (name: string, n: number | undefined) => {
    if (n !== undefined && n < 1) {
      throw new UsageError(`--${name} must be an integer ≥ 1, got ${n}`);
    }
    return n;
  };
  const checked = {
    limit: atLeastOne("limit", values.limit),
    size: atLeastOne("size", values.size)!,
    repeat: atLeastOne("repeat", values.repeat)!,
    procs: atLeastOne("procs", values.procs)!,
    only: values.only?.split(",").map((s) => s.trim()).filter(Boolean),
  };
  return { data: benchDataset({ given: values.data }), ...checked };
}

interface Sample {
  ips: number;
  seconds: number;
}

function stats(samples: Sample[]) {
  const ips = samples.map((s) => s.ips).sort((a, b) => b - a);
  return {
    best: ips[0],
    median: ips[Math.floor(ips.length / 2)],
    worst: ips[ips.length - 1],
  };
}

function meanAbsDiff(
  a: Uint8Array,
  b: Uint8Array,
  area: number,
  okA: number[],
  count: number,
): number {
  // `a` holds the images of okA packed; `b` holds `count` images in list order.
  let sum = 0;
  okA.forEach((i, k) => {
    const x = a.subarray(k * area, (k + 1) * area);
    const y = b.subarray(i * area, (i + 1) * area);
    for (let j = 0; j < area; j++) sum += Math.abs(x[j] - y[j]);
  });
  return okA.length && count ? sum / (okA.length * area) : NaN;
}

/** The variants to run, `-P` made `-<procs>`, in the canonical order. */
function chooseVariants(procs: number, only?: string[]): string[] {
  const all = VARIANTS.map((v) => v.replace(/-P$/, `-${procs}`));
  const wanted = (only ?? all).map((v) => v.replace(/-P$/, `-${procs}`));
  for (const v of wanted) {
    if (!all.includes(v)) throw new UsageError(`unknown variant ${v}`);
  }
  return all.filter((v) => wanted.includes(v));
}

/** Images packed in `ok` order, as `preprocessFiles` returns them. */
interface Packed {
  pixels: Uint8Array;
  ok: number[];
}

/** What the benchmark works on, fixed before the first run. */
interface Setup {
  flags: Flags;
  files: ImageFile[];
  paths: string[];
  /** Pixels per image. */
  area: number;
  /** The benchmark venv's Python ("" when no PIL variant runs). */
  python: string;
  /** The file listing `paths`, for the PIL side. */
  listFile: string;
  /** The scratch folder (removed at the end). */
  tmp: string;
}

/** The first run's outputs, kept to compare the variants' pixels. */
interface Outputs {
  decoded?: Packed;
  full?: Packed;
  pil: Map<string, Uint8Array>;
  quality: Map<string, number>;
}

/** `loadImages` with an empty (ours-first) or warm (ours-cached) cache. */
async function runLoad(setup: Setup, v: string, cacheDir: string) {
  const { files, flags } = setup;
  if (v === "ours-cached" && !existsSync(cacheDir)) {
    await loadImages(files, { size: flags.size, cacheDir });
  }
  const t = performance.now();
  const res = await loadImages(files, { size: flags.size, cacheDir });
  const seconds = (performance.now() - t) / 1000;
  if (v === "ours-cached" && res.cacheMisses > 0) {
    throw new Error(`cached run had ${res.cacheMisses} misses`);
  }
  return { seconds, images: res.ok.length };
}

/** `preprocessFiles` the variant's way; the first run's pixels are kept. */
async function runDecode(
  setup: Setup,
  v: string,
  first: boolean,
  outputs: Outputs,
) {
  const t = performance.now();
  const res = await preprocessFiles(setup.paths, {
    size: setup.flags.size,
    workers: v === "ours-1core" ? 1 : undefined,
    decoder: v === "sharp-only" ? "sharp" : "auto",
    shrinkOnLoad: v !== "ours-full",
  });
  const seconds = (performance.now() - t) / 1000;
  if (first && v === "ours-decode") outputs.decoded = res;
  if (first && v === "ours-full") outputs.full = res;
  if (first && v === "sharp-only" && outputs.decoded) {
    const { area, paths } = setup;
    outputs.quality.set(
      "sharp-only vs ours",
      meanAbsDiff(
        res.pixels,
        reorder(outputs.decoded, paths.length, area),
        area,
        res.ok,
        paths.length,
      ),
    );
  }
  return { seconds, images: res.ok.length };
}

/** PIL in `procs` processes (`pil-<mode>-<procs>`), timed by the script. */
async function runPil(
  setup: Setup,
  v: string,
  first: boolean,
  outputs: Outputs,
) {
  const [, mode, procs] = v.split("-");
  const out = first ? join(setup.tmp, `${v}.bin`) : undefined;
  const res = await runOk(setup.python, {
    args: [
      resolve(import.meta.dirname!, "preprocess_pil.py"),
      ...["--list", setup.listFile, "--size", String(setup.flags.size)],
      ...["--procs", procs, "--mode", mode],
      ...(out ? ["--out", out] : []),
    ],
    timeoutMs: 3_600_000,
  });
  const report = JSON.parse(res.stdout.trim().split("\n").pop()!);
  if (out) outputs.pil.set(mode, await Deno.readFile(out));
  return { seconds: report.seconds as number, images: report.images as number };
}

/** Every variant `--repeat` times, interleaved; their speeds by variant. */
async function runAll(
  setup: Setup,
  variants: string[],
  outputs: Outputs,
): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(variants.map((v) => [v, []]));
  for (let r = 0; r < setup.flags.repeat; r++) {
    const cacheDir = join(setup.tmp, `cache-${r}`);
    for (const v of variants) {
      const { seconds, images } = v === "ours-first" || v === "ours-cached"
        ? await runLoad(setup, v, cacheDir)
        : v.startsWith("ours") || v === "sharp-only"
        ? await runDecode(setup, v, r === 0, outputs)
        : await runPil(setup, v, r === 0, outputs);
      samples.get(v)!.push({ ips: images / seconds, seconds });
      console.log(
        `  run ${r + 1} ${v.padEnd(12)} ${
          (images / seconds).toFixed(0).padStart(6)
        } images/s  ` +
          `(${seconds.toFixed(2)} s, ${images} images)`,
      );
    }
    await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
  }
  return samples;
}

/** Our decoded pixels against PIL's, mode by mode. */
function compareWithPil(outputs: Outputs, area: number, n: number): void {
  const ours = [["ours", outputs.decoded], [
    "ours-full",
    outputs.full,
  ]] as const;
  for (const [name, packed] of ours) {
    if (!packed) continue;
    for (const [mode, pixels] of outputs.pil) {
      outputs.quality.set(
        `${name} vs pil-${mode}`,
        meanAbsDiff(packed.pixels, pixels, area, packed.ok, n),
      );
    }
  }
}

/** Best, median and worst speed per variant; returns the bests. */
function printSpeeds(
  variants: string[],
  samples: Map<string, Sample[]>,
): Map<string, number> {
  console.log("\nimages/s            best   median    worst   spread");
  const best = new Map<string, number>();
  for (const v of variants) {
    const s = stats(samples.get(v)!);
    best.set(v, s.best);
    console.log(
      `${v.padEnd(14)} ${s.best.toFixed(0).padStart(8)} ${
        s.median.toFixed(0).padStart(8)
      } ${s.worst.toFixed(0).padStart(8)} ${
        (((s.best - s.worst) / s.best) * 100).toFixed(0).padStart(7)
      }%`,
    );
  }
  return best;
}

/** Ratios of the pairs that do equal work, and the other comparisons. */
function printRatios(best: Map<string, number>, procs: number, n: number) {
  const P = procs;
  const sections: [string, [string, string][]][] = [
    ["equal work, all cores", [
      ["ours-decode", `pil-draft-${P}`],
      ["ours-full", `pil-full-${P}`],
    ]],
    ["equal work, one core", [["ours-1core", "pil-draft-1"]]],
    ["first run of the project (hash + decode + cache write)", [
      ["ours-first", `pil-draft-${P}`],
      ["ours-first", "pil-draft-1"],
      ["ours-first", `pil-full-${P}`],
      ["ours-first", "pil-full-1"],
    ]],
    ["other", [
      ["sharp-only", `pil-full-${P}`],
      ["ours-cached", `pil-draft-${P}`],
    ]],
  ];
  console.log("\nratios (best over best):");
  for (const [title, pairs] of sections) {
    const lines = pairs.filter(([a, b]) => best.has(a) && best.has(b)).map((
      [a, b],
    ) => `  ${a} / ${b}: ${(best.get(a)! / best.get(b)!).toFixed(2)}×`);
    if (lines.length > 0) console.log(`${title}:\n${lines.join("\n")}`);
  }
  if (best.has("ours-cached")) {
    console.log(
      `cached load of ${n} images: ${
        (n / best.get("ours-cached")!).toFixed(2)
      } s`,
    );
  }
}

/** The files, the variants, a warm page cache and a scratch folder. */
async function prepare(flags: Flags, variants: string[]): Promise<Setup> {
  const ds = await discoverDataset(flags.data);
  const files = evenlySpaced(ds.files, flags.limit);
  const paths = files.map((f) => f.path);
  const python = variants.some((v) => v.startsWith("pil"))
    ? await ensurePeerEnv({ packages: ["pillow", "numpy"] })
    : "";
  const tmp = await Deno.makeTempDir({ prefix: "bench-preprocess-" });
  const listFile = join(tmp, "files.txt");
  await Deno.writeTextFile(listFile, paths.join("\n") + "\n");
  // Warm the OS page cache equally for everyone.
  let bytes = 0;
  for (const p of paths) bytes += (await Deno.readFile(p)).length;
  console.log(
    `${paths.length} files (${
      (bytes / 1e6).toFixed(0)
    } MB) from ${flags.data}, ` +
      `size ${flags.size}, ${flags.repeat} runs each, ` +
      `${navigator.hardwareConcurrency} cores; page cache warmed`,
  );
  const area = flags.size * flags.size;
  return { flags, files, paths, area, python, listFile, tmp };
}

/** The benchmark: prepare, run every variant, print speeds and quality. */
async function benchmark(flags: Flags): Promise<void> {
  const variants = chooseVariants(flags.procs, flags.only);
  const setup = await prepare(flags, variants);
  const outputs: Outputs = { pil: new Map(), quality: new Map() };
  let samples;
  try {
    samples = await runAll(setup, variants, outputs);
  } finally {
    await Deno.remove(setup.tmp, { recursive: true }).catch(() => {});
  }
  const n = setup.paths.length;
  compareWithPil(outputs, setup.area, n);
  const best = printSpeeds(variants, samples);
  printRatios(best, flags.procs, n);
  if (outputs.quality.size > 0) {
    console.log("\nmean absolute pixel difference (0–255):");
    for (const [k, v] of outputs.quality) console.log(`${k}: ${v.toFixed(2)}`);
  }
}

/** Unpacks ok-ordered pixels back to list order (zeros for failures). */
function reorder(
  r: { pixels: Uint8Array; ok: number[] },
  n: number,
  area: number,
): Uint8Array {
  const out = new Uint8Array(n * area);
  r.ok.forEach((i, k) =>
    out.set(r.pixels.subarray(k * area, (k + 1) * area), i * area)
  );
  return out;
}

if (import.meta.main) {
  Deno.exit(
    await runCli(PREPROCESS_CLI, async ({ values }) => {
      try {
        await benchmark(checkFlags(values));
        return 0;
      } catch (error) {
        if (error instanceof UsageError) throw error;
        console.error(`error: ${(error as Error).message}`);
        return 1;
      }
    }),
  );
}
