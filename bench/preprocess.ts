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
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { discoverDataset } from "../lib/data/dataset.ts";
import { loadImages } from "../lib/data/image_cache.ts";
import { preprocessFiles } from "../lib/data/preprocess.ts";
import { runOk } from "../lib/tools/proc.ts";
import { ensurePeerEnv } from "./peer_env.ts";
import { evenlySpaced, UsageError } from "./bench_util.ts";

const USAGE = `Usage: deno run -A bench/preprocess.ts [options]
  --data DIR     folder of class folders (default /work/shared/data/brain-tumor-mri/Training)
  --limit N      use N files, evenly spaced over the sorted list (default all)
  --size N       output side (default 128)
  --repeat N     runs per variant (default 3)
  --procs N      PIL processes for the parallel PIL variants (default 2)
  --only LIST    comma-separated variants (default all):
                 ${
  [
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
  ].join(",")
}
  --help         this text`;

interface Flags {
  data: string;
  limit?: number;
  size: number;
  repeat: number;
  procs: number;
  only?: string[];
}

function parseFlags(args: string[]): Flags {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        data: {
          type: "string",
          default: "/work/shared/data/brain-tumor-mri/Training",
        },
        limit: { type: "string" },
        size: { type: "string", default: "128" },
        repeat: { type: "string", default: "3" },
        procs: { type: "string", default: "2" },
        only: { type: "string" },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const int = (name: string, text: string | undefined, min: number) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      throw new UsageError(
        `--${name} must be an integer ≥ ${min}, got ${text}`,
      );
    }
    return n;
  };
  return {
    data: resolve(values.data!),
    limit: int("limit", values.limit, 1),
    size: int("size", values.size, 1)!,
    repeat: int("repeat", values.repeat, 1)!,
    procs: int("procs", values.procs, 1)!,
    only: values.only?.split(",").map((s) => s.trim()).filter(Boolean),
  };
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

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args);
  const ds = await discoverDataset(flags.data);
  const files = evenlySpaced(ds.files, flags.limit);
  const paths = files.map((f) => f.path);
  const n = paths.length;
  const P = flags.procs;
  const all = [
    "ours-first",
    "ours-decode",
    "ours-1core",
    "ours-full",
    "ours-cached",
    "sharp-only",
    "pil-full-1",
    `pil-full-${P}`,
    "pil-draft-1",
    `pil-draft-${P}`,
  ];
  const wanted = (flags.only ?? all).map((v) => v.replace(/-P$/, `-${P}`));
  for (const v of wanted) {
    if (!all.includes(v)) {
      throw new UsageError(`unknown variant ${v}\n${USAGE}`);
    }
  }
  const variants = all.filter((v) => wanted.includes(v));

  const python = variants.some((v) => v.startsWith("pil"))
    ? await ensurePeerEnv({ packages: ["pillow", "numpy"] })
    : "";
  const tmp = await Deno.makeTempDir({ prefix: "bench-preprocess-" });
  const listFile = join(tmp, "files.txt");
  await Deno.writeTextFile(listFile, paths.join("\n") + "\n");
  const script = resolve(import.meta.dirname!, "preprocess_pil.py");

  // Warm the OS page cache equally for everyone.
  let bytes = 0;
  for (const p of paths) bytes += (await Deno.readFile(p)).length;
  console.log(
    `${n} files (${(bytes / 1e6).toFixed(0)} MB) from ${flags.data}, ` +
      `size ${flags.size}, ${flags.repeat} runs each, ` +
      `${navigator.hardwareConcurrency} cores; page cache warmed`,
  );

  const samples = new Map<string, Sample[]>(variants.map((v) => [v, []]));
  const quality = new Map<string, number>();
  let ourPixels: { pixels: Uint8Array; ok: number[] } | undefined;
  let fullPixels: { pixels: Uint8Array; ok: number[] } | undefined;
  const pilOut = new Map<string, Uint8Array>();
  const area = flags.size * flags.size;

  try {
    for (let r = 0; r < flags.repeat; r++) {
      const cacheDir = join(tmp, `cache-${r}`);
      for (const v of variants) {
        let seconds: number;
        let images = n;
        if (v === "ours-first" || v === "ours-cached") {
          if (v === "ours-cached" && !existsSync(cacheDir)) {
            await loadImages(files, { size: flags.size, cacheDir });
          }
          const t = performance.now();
          const res = await loadImages(files, { size: flags.size, cacheDir });
          seconds = (performance.now() - t) / 1000;
          images = res.ok.length;
          if (v === "ours-cached" && res.cacheMisses > 0) {
            throw new Error(`cached run had ${res.cacheMisses} misses`);
          }
        } else if (v.startsWith("ours") || v === "sharp-only") {
          const t = performance.now();
          const res = await preprocessFiles(paths, {
            size: flags.size,
            workers: v === "ours-1core" ? 1 : undefined,
            decoder: v === "sharp-only" ? "sharp" : "auto",
            shrinkOnLoad: v !== "ours-full",
          });
          seconds = (performance.now() - t) / 1000;
          images = res.ok.length;
          if (r === 0 && v === "ours-decode") ourPixels = res;
          if (r === 0 && v === "ours-full") fullPixels = res;
          if (r === 0 && v === "sharp-only" && ourPixels) {
            quality.set(
              "sharp-only vs ours",
              meanAbsDiff(
                res.pixels,
                reorder(ourPixels, n, area),
                area,
                res.ok,
                n,
              ),
            );
          }
        } else {
          const [, mode, procs] = v.split("-");
          const out = r === 0 ? join(tmp, `${v}.bin`) : undefined;
          const res = await runOk(python, {
            args: [
              script,
              "--list",
              listFile,
              "--size",
              String(flags.size),
              "--procs",
              procs,
              "--mode",
              mode,
              ...(out ? ["--out", out] : []),
            ],
            timeoutMs: 3_600_000,
          });
          const report = JSON.parse(res.stdout.trim().split("\n").pop()!);
          seconds = report.seconds;
          images = report.images;
          if (out) pilOut.set(mode, await Deno.readFile(out));
        }
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
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }

  for (
    const [name, ours] of [["ours", ourPixels], [
      "ours-full",
      fullPixels,
    ]] as const
  ) {
    if (!ours) continue;
    for (const [mode, pixels] of pilOut) {
      quality.set(
        `${name} vs pil-${mode}`,
        meanAbsDiff(ours.pixels, pixels, area, ours.ok, n),
      );
    }
  }

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
  if (quality.size > 0) {
    console.log("\nmean absolute pixel difference (0–255):");
    for (const [k, v] of quality) console.log(`${k}: ${v.toFixed(2)}`);
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
  try {
    await main();
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
