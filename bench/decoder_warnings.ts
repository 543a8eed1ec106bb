/**
 * How many scans of a dataset make the decoder warn ("Corrupt JPEG data",
 * "Premature end of JPEG file", a PNG checksum, ...). The count decides what
 * the pipeline calls corrupt: on the Kaggle Training folder it is 0 of 5,712,
 * so every decode path treats a warning as an error. Also counts the JPEGs
 * that show a sign of damage to the pipeline's fast TensorFlow decode
 * (`jpegDamageSign`: those get a second, strict decode): 0 of 5,712 there.
 *
 * ```sh
 * deno run -A bench/decoder_warnings.ts [--data DIR] [--json]
 * ```
 *
 * Each file is decoded twice with sharp: with warnings as errors (as the
 * pipeline now decodes), and, for the ones that fail, with only errors as
 * errors — so a file that fails both is broken, and one that fails only the
 * first is a file that used to decode with a warning.
 *
 * @module
 */
import sharp from "sharp";
import { runCli } from "../lib/core/cli.ts";
import { discoverDataset } from "../lib/data/dataset.ts";
import { imageFormat } from "../lib/data/image_header.ts";
import { jpegDamageSign } from "../lib/data/preprocess.ts";
import { benchDataset, recordedPath } from "./bench_util.ts";

const CLI = {
  command: "deno run -A bench/decoder_warnings.ts",
  summary: "Counts the scans of a dataset that make the decoder warn.",
  flags: {
    data: {
      type: "string",
      value: "DIR",
      defaultText: "Training/ of BRAIN_MRI_DATA, else of data/",
      help: "folder of class folders",
    },
    json: { type: "boolean", help: "print the counts as JSON" },
  },
} as const;

/** What decoding one file strictly and leniently gave. */
type Verdict = "clean" | "warned" | "broken";

async function decodes(bytes: Uint8Array, failOn: "warning" | "error") {
  try {
    await sharp(bytes, { failOn, sequentialRead: true })
      .resize(128, 128, { fit: "fill", fastShrinkOnLoad: true })
      .toColourspace("b-w")
      .raw()
      .toBuffer();
    return undefined;
  } catch (error) {
    return (error as Error).message.split("\n")[0];
  }
}

/** The pipeline's sign of damage for a JPEG that decodes (else none). */
function signOf(path: string): string | undefined {
  const bytes = Deno.readFileSync(path);
  if (imageFormat(bytes) !== "jpeg") return undefined;
  try {
    return jpegDamageSign(bytes);
  } catch {
    return undefined; // broken: counted by the strict decode
  }
}

async function verdict(path: string): Promise<[Verdict, string?]> {
  const bytes = await Deno.readFile(path);
  const strict = await decodes(bytes, "warning");
  if (strict === undefined) return ["clean"];
  const lenient = await decodes(bytes, "error");
  return lenient === undefined ? ["warned", strict] : ["broken", lenient];
}

if (import.meta.main) {
  Deno.exit(
    await runCli(CLI, async ({ values }) => {
      const root = benchDataset({ given: values.data });
      const files = (await discoverDataset(root)).files.map((f) => f.path);
      const counts = {
        files: files.length,
        clean: 0,
        warned: 0,
        broken: 0,
        signOfDamage: 0,
      };
      const examples: { file: string; verdict: Verdict; reason: string }[] = [];
      for (const file of files) {
        const [v, reason] = await verdict(file);
        counts[v]++;
        const sign = signOf(file);
        if (sign) counts.signOfDamage++;
        if (reason) {
          examples.push({ file: recordedPath(file), verdict: v, reason });
        }
      }
      const result = { data: recordedPath(root), ...counts, examples };
      if (values.json) console.log(JSON.stringify(result, null, 2));
      else {
        console.log(
          `${result.data}: ${counts.files} files, ${counts.clean} clean, ` +
            `${counts.warned} decode only with a warning, ${counts.broken} broken; ` +
            `${counts.signOfDamage} JPEGs show a sign of damage to the fast decode`,
        );
        for (const e of examples) {
          console.log(`  ${e.verdict}  ${e.file}: ${e.reason}`);
        }
      }
      return 0;
    }),
  );
}
