/**
 * The embedded default dataset: a seeded generator of synthetic, MRI-like
 * axial brain slices, written as JPEGs in the layout of the Kaggle "Brain
 * Tumor MRI Dataset" (`Training/<class>/Tr-<abbr>_NNNN.jpg`,
 * `Testing/<class>/Te-<abbr>_NNNN.jpg`), so that every notebook and test can
 * run end to end without the real data.
 *
 * **The images are synthetic.** Each one is drawn from random numbers: a
 * slightly irregular bright skull ring, brain tissue with grey/white-matter
 * texture, sulci, an interhemispheric fissure and dark butterfly-shaped
 * ventricles, a smooth bias field, Rician noise and a random contrast; then
 * the lesion of its class:
 *
 * | class        | lesion                                                                                   |
 * | ------------ | ---------------------------------------------------------------------------------------- |
 * | `glioma`     | irregular, fuzzy, heterogeneous mass inside one hemisphere (rim enhancement, necrotic core, oedema halo) |
 * | `meningioma` | round, sharply bounded, bright mass against the inner skull edge (extra-axial), often with a dural tail |
 * | `pituitary`  | small bright mass at the "sella", on the midline below the centre                        |
 * | `notumor`    | none                                                                                     |
 *
 * Every class also gets look-alike distractors (small bright vessels, a faint
 * normal gland at the sella) so that "is there a bright spot" is not enough.
 * Each lesion is large and contrasted enough to stand out at the project's
 * 128-pixel training size (gliomas keep clear of the skull, as intra-axial
 * masses do), so that the report's seed CNN learns the classes over its ten
 * epochs; the head's size, tilt, position, contrast and noise vary from
 * scan to scan, so that it does not learn them at once.
 * Generation runs at 256 pixels internally with typed arrays and lets sharp
 * resize to the target size, so a few hundred images take a few seconds.
 *
 * Reproducible: the same seed and options give byte-identical files, and each
 * image's seed is derived from (seed, split, class, index), so an image does
 * not depend on how many others are made or in which order. Within one seed,
 * anatomy, noise and contrast do not depend on the label, so
 * `renderSlice({ label, seed })` for two labels shows the same head with and
 * without its lesion.
 *
 * @module
 */
import sharp from "sharp";
import { join, resolve } from "node:path";
import { writeFileAtomic, writeTextAtomic } from "../core/atomic.ts";
import { deriveSeed, type Rng, rng } from "../core/random.ts";
import { type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import { DEFAULTS } from "../core/defaults.ts";

/** The four classes, in the Kaggle dataset's (alphabetical) order. */
export const SYNTHETIC_CLASSES = [
  "glioma",
  "meningioma",
  "notumor",
  "pituitary",
] as const;

/** One of {@linkcode SYNTHETIC_CLASSES}. */
export type SyntheticClass = (typeof SYNTHETIC_CLASSES)[number];

/** The two-letter abbreviation of each class in Kaggle's file names. */
export const SYNTHETIC_ABBREVIATIONS: Readonly<Record<SyntheticClass, string>> =
  {
    glioma: "gl",
    meningioma: "me",
    notumor: "no",
    pituitary: "pi",
  };

/**
 * Version of the drawing code, written into the marker file so that a dataset
 * made by an older version is regenerated rather than reused. Bump it with
 * every change that alters the pixels.
 */
export const SYNTHETIC_VERSION = 2;

/** Name of the marker file written at the top of a synthetic dataset. */
export const SYNTHETIC_MARKER = "SYNTHETIC.md";

/** An image size: a side length (square) or `[width, height]`. */
export type SyntheticSize = number | readonly [width: number, height: number];

/**
 * Default image sizes, picked per image: the real dataset's sizes vary (512×512
 * is the most common) and a few are not square.
 */
export const SYNTHETIC_DEFAULT_SIZES: readonly SyntheticSize[] = [
  256,
  300,
  350,
  412,
  512,
  512,
  [450, 504],
  [512, 440],
];

/**
 * The generator's defaults (the seed comes from `DEFAULTS.seed`): the size of
 * the project's synthetic default dataset, and the JPEG quality. 500 training
 * images per class: with a few hundred fewer, ten epochs of batches of 32 are
 * too few steps for the seed CNN to get past predicting every class alike.
 */
export const SYNTHETIC_DEFAULTS: Readonly<{
  trainPerClass: number;
  testPerClass: number;
  quality: number;
}> = Object.freeze({ trainPerClass: 500, testPerClass: 40, quality: 90 });

/** Internal drawing resolution (longest side) before sharp resizes. */
const INTERNAL_SIZE = 256;

/** Options for {@linkcode generateSyntheticDataset}. */
export interface SyntheticOptions {
  /** Dataset root; `Training/` and `Testing/` are created inside it. */
  outDir: string;
  /** Base seed (default `DEFAULTS.seed`, 42). */
  seed?: number;
  /** Training images per class (default `SYNTHETIC_DEFAULTS`, 500). */
  trainPerClass?: number;
  /** Testing images per class (default `SYNTHETIC_DEFAULTS`, 40). */
  testPerClass?: number;
  /**
   * Sizes to pick from, per image: side lengths, or `[width, height]` pairs
   * (default {@linkcode SYNTHETIC_DEFAULT_SIZES}). Each side 32–4096.
   */
  sizes?: readonly SyntheticSize[];
  /** JPEG quality, 1–100 (default `SYNTHETIC_DEFAULTS`, 90). */
  quality?: number;
}

/** What {@linkcode generateSyntheticDataset} made (or found). */
export interface SyntheticDatasetResult {
  /** The dataset root, as an absolute path. */
  outDir: string;
  /** Images per split and class: `counts.Training.glioma`, ... */
  counts: Record<string, Record<string, number>>;
  /** Number of image files in the dataset. */
  files: number;
  /** True when a complete dataset with the same options was already there. */
  reused: boolean;
}

/** Options for {@linkcode renderSlice}. */
export interface RenderSliceOptions {
  /** The class whose lesion to draw (one of {@linkcode SYNTHETIC_CLASSES}). */
  label: string;
  /** Seed of the slice. */
  seed: number;
  /** Side length in pixels (default 256). */
  size?: number;
}

// ---------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------

/** Smoothstep of t clamped to [0, 1]. */
function sm(t: number): number {
  if (t <= 0) return 0;
  if (t >= 1) return 1;
  return t * t * (3 - 2 * t);
}

/**
 * Adds `amp` × value noise (about [-1, 1], `cells` lattice cells across the
 * short side) to `out`.
 */
function addValueNoise(
  out: Float32Array,
  r: Rng,
  w: number,
  h: number,
  cells: number,
  amp: number,
): void {
  const s = Math.min(w, h);
  const step = cells / s;
  const gw = Math.ceil(w * step) + 2;
  const gh = Math.ceil(h * step) + 2;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = (r.next() * 2 - 1) * amp;
  const ox = r.next();
  const oy = r.next();
  const xi = new Int32Array(w);
  const xf = new Float32Array(w);
  for (let x = 0; x < w; x++) {
    const g = (x + 0.5) * step + ox;
    xi[x] = Math.floor(g);
    xf[x] = sm(g - xi[x]);
  }
  const line = new Float32Array(gw);
  for (let y = 0; y < h; y++) {
    const g = (y + 0.5) * step + oy;
    const j = Math.floor(g);
    const fy = sm(g - j);
    const row0 = j * gw;
    const row1 = row0 + gw;
    for (let k = 0; k < gw; k++) {
      line[k] = grid[row0 + k] + (grid[row1 + k] - grid[row0 + k]) * fy;
    }
    const base = y * w;
    for (let x = 0; x < w; x++) {
      const i = xi[x];
      out[base + x] += line[i] + (line[i + 1] - line[i]) * xf[x];
    }
  }
}

/** Fractal sum of value noise, scaled to about [-1, 1]. */
function fbm(
  r: Rng,
  w: number,
  h: number,
  cells: number,
  octaves: number,
): Float32Array {
  const out = new Float32Array(w * h);
  let total = 0;
  for (let o = 0; o < octaves; o++) total += 0.5 ** o;
  for (let o = 0; o < octaves; o++) {
    addValueNoise(out, r, w, h, cells * 2 ** o, (1.6 * 0.5 ** o) / total);
  }
  return out;
}

/** Largest magnitude the tone table covers. */
const TONE_MAX = 2;

/** Grey level (0–255) of magnitudes 0…TONE_MAX, after gain and gamma. */
function toneTable(gain: number, gamma: number): Uint8Array {
  const table = new Uint8Array(4097);
  for (let k = 0; k < table.length; k++) {
    const level = gain * Math.pow((k / (table.length - 1)) * TONE_MAX, gamma);
    table[k] = Math.max(0, Math.min(255, Math.round(level * 255)));
  }
  return table;
}

let normalCache: Float32Array | undefined;

/**
 * Standard-normal quantiles at (k + 0.5) / 65536, so that 16 random bits
 * give one normal draw (Acklam's rational approximation of the inverse CDF).
 */
function normalTable(): Float32Array {
  if (normalCache) return normalCache;
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [
    0.007784695709041462,
    0.3224671290700398,
    2.445134137142996,
    3.754408661907416,
  ];
  const tail = (p: number) => {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q +
      c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  };
  const table = new Float32Array(65536);
  for (let k = 0; k < table.length; k++) {
    const p = (k + 0.5) / table.length;
    if (p < 0.02425) {
      table[k] = tail(p);
    } else if (p > 1 - 0.02425) {
      table[k] = -tail(1 - p);
    } else {
      const q = p - 0.5;
      const r = q * q;
      table[k] =
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) *
        q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
  }
  normalCache = table;
  return table;
}

/** A round blob in head coordinates (isotropic units). */
interface Blob {
  u: number;
  v: number;
  r: number;
  /** Stretch along v (1 = round). */
  stretch: number;
  amp: number;
  /** Edge width as a fraction of r (plus at least a pixel). */
  edge: number;
  /** Texture amplitude inside the blob. */
  het: number;
}

interface Anatomy {
  cx: number;
  cy: number;
  /** Half-width and half-height of the head, in short-side units. */
  a: number;
  b: number;
  theta: number;
  harm: { k: number; c: number; p: number }[];
  /** Skull/scalp thickness scale. */
  thick: number;
  gap: number;
  scalp: number;
  marrow: number;
  csf: number;
  grey: number;
  white: number;
  cortex: number;
  sulci: number;
  texture: number;
  vent: {
    v: number;
    len: number;
    dx: number;
    curve: number;
    width: number;
    value: number;
  };
  bias: { amp: number; dir: number };
  noise: number;
  gain: number;
  gamma: number;
  distractors: Blob[];
}

interface Glioma {
  kind: "glioma";
  u: number;
  v: number;
  r: number;
  harm: { k: number; c: number; p: number }[];
  irregular: number;
  edge: number;
  base: number;
  rim: number;
  necrosis: number;
  het: number;
  oedema: number;
  halo: number;
}

interface Meningioma {
  kind: "meningioma";
  blob: Blob;
  lobes: { k: number; c: number; p: number }[];
  phi: number;
  tailAngle: number;
  tailAmp: number;
}

interface Pituitary {
  kind: "pituitary";
  blob: Blob;
}

type Lesion = Glioma | Meningioma | Pituitary;

/** Outer edge of the head → inner edge of the skull, in normalised radius. */
function skullInner(anat: Anatomy): number {
  return 1 - 0.085 * anat.thick;
}

/** Brain edge (inner edge of the CSF gap), in normalised radius. */
function brainEdge(anat: Anatomy): number {
  return skullInner(anat) - anat.gap;
}

function headRadius(anat: Anatomy, phi: number): number {
  let rad = 1;
  const harm = anat.harm;
  for (let j = 0; j < harm.length; j++) {
    rad += harm[j].c * Math.cos(harm[j].k * phi + harm[j].p);
  }
  return rad;
}

function sampleAnatomy(r: Rng): Anatomy {
  const level = r.uniform(0, 1);
  const a = r.uniform(0.3, 0.4);
  const b = Math.min(0.46, a * r.uniform(1.08, 1.28));
  const harm = [2, 3, 4, 5, 6].map((k) => ({
    k,
    c: r.uniform(0, 0.035) / k ** 0.7,
    p: r.uniform(0, 2 * Math.PI),
  }));
  const grey = r.uniform(0.22, 0.32);
  const csf = r.uniform(0.03, 0.09);
  const anat: Anatomy = {
    cx: r.normal(0, 0.025),
    cy: r.normal(0, 0.025),
    a,
    b,
    theta: Math.max(-0.3, Math.min(0.3, r.normal(0, 0.1))),
    harm,
    thick: r.uniform(0.75, 1.35),
    gap: r.uniform(0.012, 0.03),
    scalp: r.uniform(0.5, 0.85),
    marrow: r.uniform(0.25, 0.6),
    csf,
    grey,
    white: grey + r.uniform(0.07, 0.15),
    cortex: r.uniform(0.07, 0.14),
    sulci: r.uniform(0.4, 0.9),
    texture: r.uniform(0.015, 0.04),
    vent: {
      v: r.uniform(-0.14, 0.02),
      len: 0,
      dx: r.uniform(0.03, 0.06),
      curve: r.uniform(0.06, 0.16),
      width: 0,
      value: csf * r.uniform(0.8, 1.3),
    },
    bias: { amp: r.uniform(0, 0.18), dir: r.uniform(0, 2 * Math.PI) },
    noise: r.uniform(0.012, 0.045),
    gain: r.uniform(0.8, 1.15),
    gamma: r.uniform(0.85, 1.2),
    distractors: [],
  };
  // Ventricles are largest in mid-level slices and shrink above and below.
  const size = r.uniform(0.6, 1.3) *
    Math.max(0.2, 1 - 1.4 * Math.abs(level - 0.5));
  anat.vent.len = 0.3 * size;
  anat.vent.width = r.uniform(0.035, 0.07) * Math.sqrt(size);
  // Look-alikes every class has: small bright vessels anywhere in the brain,
  // and (half the time) a faint normal gland where a pituitary mass would be.
  const vessels = r.int(0, 3);
  for (let i = 0; i < vessels; i++) {
    const rad = r.uniform(0, 0.7);
    const ang = r.uniform(0, 2 * Math.PI);
    anat.distractors.push({
      u: rad * Math.cos(ang),
      v: rad * Math.sin(ang),
      r: r.uniform(0.012, 0.03),
      stretch: r.uniform(0.7, 1.4),
      amp: r.uniform(0.08, 0.3),
      edge: 0.4,
      het: 0,
    });
  }
  if (r.next() < 0.5) {
    anat.distractors.push({
      u: r.normal(0, 0.03),
      v: r.uniform(0.18, 0.42),
      r: r.uniform(0.025, 0.05),
      stretch: r.uniform(0.9, 1.3),
      amp: r.uniform(0.03, 0.12),
      edge: 0.5,
      het: 0,
    });
  }
  return anat;
}

/** The lesion of a class, or `null` for `notumor`. */
function sampleLesion(
  label: SyntheticClass,
  r: Rng,
  anat: Anatomy,
): Lesion | null {
  if (label === "glioma") return sampleGlioma(r, anat);
  if (label === "meningioma") return sampleMeningioma(r, anat);
  if (label === "pituitary") return samplePituitary(r);
  return null;
}

/**
 * An irregular mass inside one hemisphere, kept inside the brain, made
 * visible enough by its base level, rim and necrotic core together.
 */
function sampleGlioma(r: Rng, anat: Anatomy): Glioma {
  const rb = brainEdge(anat);
  const side = r.next() < 0.5 ? -1 : 1;
  const rad = r.uniform(0.17, 0.33);
  let u = side * Math.max(r.uniform(0.22, 0.55), rad * 0.9 + 0.04);
  let v = r.uniform(-0.5, 0.45);
  const reach = Math.hypot(u, v) + rad * 0.8;
  if (reach > rb * 0.85) {
    const k = (rb * 0.85 - rad * 0.8) / Math.hypot(u, v);
    u *= k;
    v *= k;
  }
  let base = r.uniform(-0.12, 0.12);
  let rim = r.uniform(0.2, 0.45);
  let necrosis = r.uniform(0, 0.2);
  const visibility = Math.abs(base) + rim + necrosis;
  const wanted = r.uniform(0.3, 0.5);
  if (visibility < wanted) {
    const k = wanted / Math.max(visibility, 1e-3);
    base *= k;
    rim *= k;
    necrosis *= k;
  }
  return {
    kind: "glioma",
    u,
    v,
    r: rad,
    harm: [2, 3, 4, 5].map((k) => ({
      k,
      c: r.uniform(0, 0.18) / Math.sqrt(k),
      p: r.uniform(0, 2 * Math.PI),
    })),
    irregular: r.uniform(0.1, 0.3),
    edge: r.uniform(0.12, 0.35),
    base,
    rim,
    necrosis,
    het: r.uniform(0.03, 0.1),
    oedema: r.uniform(0.06, 0.14),
    halo: r.uniform(1.3, 1.9),
  };
}

/** A round mass against the inner skull edge, often with a dural tail. */
function sampleMeningioma(r: Rng, anat: Anatomy): Meningioma {
  const phi = r.uniform(0, 2 * Math.PI);
  const rad = r.uniform(0.12, 0.25);
  const inner = skullInner(anat) * headRadius(anat, phi);
  const d = inner - rad * r.uniform(0.55, 0.95);
  return {
    kind: "meningioma",
    blob: {
      u: d * Math.cos(phi),
      v: d * Math.sin(phi),
      r: rad,
      stretch: r.uniform(0.85, 1.15),
      amp: r.uniform(0.3, 0.6),
      edge: r.uniform(0.02, 0.08),
      het: r.uniform(0.01, 0.05),
    },
    lobes: [2, 3, 4].map((k) => ({
      k,
      c: r.uniform(0, 0.06),
      p: r.uniform(0, 2 * Math.PI),
    })),
    phi,
    tailAngle: r.uniform(0.1, 0.3) + rad,
    tailAmp: r.next() < 0.6 ? r.uniform(0.3, 0.6) : 0,
  };
}

/** A small mass at the sella, on the midline below the centre. */
function samplePituitary(r: Rng): Pituitary {
  return {
    kind: "pituitary",
    blob: {
      u: r.normal(0, 0.03),
      v: r.uniform(0.18, 0.42),
      r: r.uniform(0.07, 0.13),
      stretch: r.uniform(1, 1.4),
      amp: r.uniform(0.3, 0.6),
      edge: r.uniform(0.1, 0.3),
      het: r.uniform(0.01, 0.05),
    },
  };
}

/** Per-pixel geometry of a slice, shared by the painting steps. */
interface Geometry {
  w: number;
  h: number;
  /** Head coordinates: u across (÷a), v down (÷b). */
  U: Float32Array;
  V: Float32Array;
  /** Head radius normalised by the irregular outline. */
  RN: Float32Array;
  /** Isotropic scaling of u and v (so circles stay round in pixels). */
  ku: number;
  kv: number;
  /** One pixel in isotropic head units. */
  px: number;
  /** Maps head coordinates (u, v) to a pixel position. */
  toPixel: (u: number, v: number) => [number, number];
}

/** Pixel rectangle [x0, x1) × [y0, y1) around head point (u, v). */
function box(
  g: Geometry,
  u: number,
  v: number,
  reach: number,
): [number, number, number, number] {
  const [x, y] = g.toPixel(u, v);
  const r = reach / g.px + 2;
  return [
    Math.max(0, Math.floor(x - r)),
    Math.min(g.w, Math.ceil(x + r + 1)),
    Math.max(0, Math.floor(y - r)),
    Math.min(g.h, Math.ceil(y + r + 1)),
  ];
}

function geometry(anat: Anatomy, w: number, h: number): Geometry {
  const s = Math.min(w, h);
  const n = w * h;
  const U = new Float32Array(n);
  const V = new Float32Array(n);
  const RN = new Float32Array(n);
  const cos = Math.cos(anat.theta);
  const sin = Math.sin(anat.theta);
  // The outline's radius by angle from the harmonics, with cos kφ and sin kφ
  // from powers of (u + iv) / ρ (no trigonometry per pixel).
  const harm = anat.harm;
  const maxK = Math.max(...harm.map((hm) => hm.k));
  const ca = new Float64Array(maxK + 1);
  const cb = new Float64Array(maxK + 1);
  for (const hm of harm) {
    ca[hm.k] += hm.c * Math.cos(hm.p);
    cb[hm.k] += hm.c * Math.sin(hm.p);
  }
  for (let y = 0; y < h; y++) {
    const py = (y + 0.5 - h / 2) / s - anat.cy;
    for (let x = 0; x < w; x++) {
      const pxx = (x + 0.5 - w / 2) / s - anat.cx;
      const u = (pxx * cos + py * sin) / anat.a;
      const v = (-pxx * sin + py * cos) / anat.b;
      const i = y * w + x;
      U[i] = u;
      V[i] = v;
      const rr = u * u + v * v;
      if (rr > 2.25) {
        RN[i] = 1.5;
        continue;
      }
      const rho = Math.sqrt(rr);
      if (rho < 1e-9) {
        RN[i] = 0;
        continue;
      }
      const c1 = u / rho;
      const s1 = v / rho;
      let ck = c1;
      let sk = s1;
      let rad = 1;
      for (let k = 2; k <= maxK; k++) {
        const cn = ck * c1 - sk * s1;
        sk = sk * c1 + ck * s1;
        ck = cn;
        rad += ca[k] * ck - cb[k] * sk;
      }
      RN[i] = rho / rad;
    }
  }
  const ab = Math.sqrt(anat.a * anat.b);
  return {
    w,
    h,
    U,
    V,
    RN,
    ku: anat.a / ab,
    kv: anat.b / ab,
    px: 1 / (ab * s),
    toPixel: (u, v) => {
      const ua = u * anat.a;
      const vb = v * anat.b;
      return [
        (ua * cos - vb * sin + anat.cx) * s + w / 2 - 0.5,
        (ua * sin + vb * cos + anat.cy) * s + h / 2 - 0.5,
      ];
    },
  };
}

/** Adds a soft round blob to `add`, textured by `tex`. */
function paintBlob(
  add: Float32Array,
  g: Geometry,
  blob: Blob,
  tex: Float32Array,
  lobes: { k: number; c: number; p: number }[] = [],
): void {
  const edge = Math.max(blob.edge * blob.r, 1.2 * g.px);
  const reach = blob.r * 1.3 + 2 * edge;
  const [x0, x1, y0, y1] = box(
    g,
    blob.u,
    blob.v,
    reach * Math.max(1, blob.stretch),
  );
  for (let y = y0; y < y1; y++) {
    for (let i = y * g.w + x0; i < y * g.w + x1; i++) {
      const du = (g.U[i] - blob.u) * g.ku;
      const dv = (g.V[i] - blob.v) * g.kv / blob.stretch;
      const d = Math.sqrt(du * du + dv * dv);
      if (d > reach) continue;
      let rad = blob.r;
      if (lobes.length > 0) {
        const psi = Math.atan2(dv, du);
        let m = 1;
        for (let j = 0; j < lobes.length; j++) {
          m += lobes[j].c * Math.cos(lobes[j].k * psi + lobes[j].p);
        }
        rad *= m;
      }
      const wgt = 1 - sm((d - rad) / edge + 0.5);
      if (wgt > 0) add[i] += blob.amp * wgt * (1 + blob.het * 4 * tex[i]);
    }
  }
}

function paintGlioma(
  add: Float32Array,
  g: Geometry,
  t: Glioma,
  shape: Float32Array,
  tex: Float32Array,
): void {
  const maxR = t.r * (1 + t.harm.reduce((s, h) => s + h.c, 0) + t.irregular);
  const reach = maxR * t.halo + maxR * t.edge;
  const [x0, x1, y0, y1] = box(g, t.u, t.v, reach);
  for (let y = y0; y < y1; y++) {
    for (let i = y * g.w + x0; i < y * g.w + x1; i++) {
      const du = (g.U[i] - t.u) * g.ku;
      const dv = (g.V[i] - t.v) * g.kv;
      const d = Math.sqrt(du * du + dv * dv);
      if (d > reach) continue;
      const psi = Math.atan2(dv, du);
      let m = 1 + t.irregular * shape[i];
      for (let j = 0; j < t.harm.length; j++) {
        m += t.harm[j].c * Math.cos(t.harm[j].k * psi + t.harm[j].p);
      }
      const rEff = t.r * Math.max(0.3, m);
      const ew = Math.max(t.edge * rEff, 1.2 * g.px);
      const q = d / rEff;
      const inside = 1 - sm((d - rEff) / ew + 0.5);
      const rim = Math.exp(-(((q - 0.78) / 0.2) ** 2));
      const core = 1 - sm((q - 0.2) / 0.4);
      const mass = t.base + t.rim * rim - t.necrosis * core +
        t.het * 3 * tex[i];
      const halo = 1 - sm((d - rEff) / (rEff * (t.halo - 1)));
      add[i] += inside * mass - (1 - inside) * t.oedema * halo;
    }
  }
}

/** The value-noise fields of one slice, drawn in this order from its texture seed. */
interface Textures {
  low: Float32Array;
  cortexNoise: Float32Array;
  sulcusNoise: Float32Array;
  fine: Float32Array;
  shape: Float32Array;
}

function sampleTextures(seed: number, w: number, h: number): Textures {
  const tr = rng(deriveSeed(seed, "texture"));
  const low = fbm(tr, w, h, 3, 2);
  const cortexNoise = fbm(tr, w, h, 6, 1);
  const sulcusNoise = fbm(tr, w, h, 16, 2);
  const fine = fbm(tr, w, h, 12, 2);
  const shape = fbm(tr, w, h, 8, 1);
  return { low, cortexNoise, sulcusNoise, fine, shape };
}

/** Everything the painting of one slice reads. */
interface Canvas {
  anat: Anatomy;
  g: Geometry;
  tex: Textures;
  /** Inner edge of the skull, in normalised radius. */
  inner: number;
  /** Edge of the brain, in normalised radius. */
  rb: number;
  /** Width of a soft edge: 1.2 pixels in head units. */
  pw: number;
}

/**
 * What the look-alikes and the lesion add to the brain, and (a meningioma)
 * to the dura.
 */
function paintAdditions(
  c: Canvas,
  lesion: Lesion | null,
): { brainAdd: Float32Array; duraAdd: Float32Array } {
  const { g, tex } = c;
  const n = g.w * g.h;
  const brainAdd = new Float32Array(n);
  const duraAdd = new Float32Array(n);
  for (const blob of c.anat.distractors) paintBlob(brainAdd, g, blob, tex.fine);
  if (lesion?.kind === "glioma") {
    paintGlioma(brainAdd, g, lesion, tex.shape, tex.fine);
  } else if (lesion?.kind === "pituitary") {
    paintBlob(brainAdd, g, lesion.blob, tex.fine);
  } else if (lesion?.kind === "meningioma") {
    paintBlob(duraAdd, g, lesion.blob, tex.fine, lesion.lobes);
    if (lesion.tailAmp > 0) paintDuralTail(duraAdd, c, lesion);
  }
  return { brainAdd, duraAdd };
}

/** A meningioma's dural tail: a band along the skull that fades with angle. */
function paintDuralTail(
  duraAdd: Float32Array,
  c: Canvas,
  lesion: Meningioma,
): void {
  const { g, rb, inner } = c;
  const amp = lesion.blob.amp * lesion.tailAmp;
  for (let i = 0; i < g.w * g.h; i++) {
    const rn = g.RN[i];
    if (rn < rb - 0.02 || rn > inner) continue;
    let dphi = Math.abs(Math.atan2(g.V[i], g.U[i]) - lesion.phi) %
      (2 * Math.PI);
    if (dphi > Math.PI) dphi = 2 * Math.PI - dphi;
    if (dphi < lesion.tailAngle) {
      duraAdd[i] += amp * (1 - dphi / lesion.tailAngle);
    }
  }
}

/**
 * Brain tissue at pixel `i`, `depth` below the brain's edge: a cortex
 * ribbon (grey) over white matter with low-frequency texture, and sulci —
 * dark wiggly CSF lines reaching in from the surface, with grey matter around
 * them (gyri) over brighter white matter.
 */
function brainTissue(c: Canvas, i: number, depth: number): number {
  const { anat, tex } = c;
  const cortex = anat.cortex * (1 + 0.5 * tex.cortexNoise[i]);
  const q = tex.sulcusNoise[i] / 0.14;
  const line = q > -1 && q < 1 ? (1 - q * q) * (1 - q * q) : 0;
  const reach = sm((cortex * 2 - depth) / 0.08 + 0.5);
  const whiteness = sm((depth - cortex - 0.6 * cortex * line) / 0.05 + 0.5);
  const tissue = anat.grey + (anat.white - anat.grey) * whiteness +
    anat.texture * (tex.low[i] + 0.6 * tex.fine[i]);
  const sulcus = line * line * anat.sulci * reach;
  return tissue + (anat.csf - tissue) * sulcus;
}

/** The interhemispheric fissure, front and back, darkens `tissue`. */
function withFissure(c: Canvas, i: number, tissue: number): number {
  const { g, rb, pw } = c;
  const av = Math.abs(g.V[i]);
  if (av <= 0.45 * rb) return tissue;
  const f = (1 - sm((Math.abs(g.U[i]) * g.ku - 0.008) / pw + 0.5)) *
    sm((av - 0.45 * rb) / 0.15);
  return tissue + (c.anat.csf - tissue) * f * 0.7;
}

/** The lateral ventricles, a ")(" butterfly around the midline, over `tissue`. */
function withVentricles(c: Canvas, i: number, tissue: number): number {
  const { g, pw } = c;
  const vent = c.anat.vent;
  const u = g.U[i];
  const tv = (g.V[i] - vent.v) / vent.len;
  if (!(tv > -1 && tv < 1)) return tissue;
  const half = vent.width * Math.sqrt(1 - tv * tv) *
    (1 + 0.5 * Math.max(0, tv));
  const spread = vent.curve * tv * tv * (tv < 0 ? 1.3 : 1);
  const side = u < 0 ? -1 : 1;
  const dist = (Math.abs(u - side * (vent.dx + spread)) - half) * g.ku;
  const inVent = 1 - sm(dist / (2 * pw) + 0.5);
  return tissue + (vent.value - tissue) * inVent;
}

/**
 * The noiseless slice: the head profile (outside in: scalp, dark bone,
 * marrow, dark bone, CSF) as a sum of soft steps, the brain inside it with
 * what the lesion adds, and the dura's additions.
 */
function paintHead(
  c: Canvas,
  adds: { brainAdd: Float32Array; duraAdd: Float32Array },
): Float32Array {
  const { anat, g, inner, rb, pw } = c;
  const t = anat.thick;
  const edges = [1, 1 - 0.035 * t, 1 - 0.05 * t, 1 - 0.075 * t, inner];
  const values = [anat.scalp, 0.05, anat.marrow, 0.05, anat.csf];
  const image = new Float32Array(g.w * g.h);
  for (let i = 0; i < image.length; i++) {
    const rn = g.RN[i];
    if (rn > 1 + 2 * pw) continue;
    let value = 0;
    let prev = 0;
    for (let k = 0; k < edges.length; k++) {
      value += (values[k] - prev) * sm((edges[k] - rn) / pw + 0.5);
      prev = values[k];
    }
    value *= 1 + 0.12 * c.tex.low[i];
    const inBrain = sm((rb - rn) / pw + 0.5);
    if (inBrain > 0) {
      const tissue = withVentricles(
        c,
        i,
        withFissure(c, i, brainTissue(c, i, rb - rn)),
      );
      value += (tissue + adds.brainAdd[i] - anat.csf) * inBrain;
    }
    if (adds.duraAdd[i] !== 0) {
      value += adds.duraAdd[i] * sm((inner - rn) / pw + 0.5);
    }
    image[i] = Math.max(0, value);
  }
  return image;
}

/**
 * Smooth bias field, Rician noise and contrast → bytes. One 32-bit draw per
 * pixel gives the two normals (real and imaginary noise) via a table.
 */
function toGreyLevels(
  image: Float32Array,
  anat: Anatomy,
  seed: number,
  g: Geometry,
): Uint8Array {
  const { w, h } = g;
  const normals = normalTable();
  const nr = rng(deriveSeed(seed, "noise"));
  const sigma = anat.noise;
  const tone = toneTable(anat.gain, anat.gamma);
  const toneScale = (tone.length - 1) / TONE_MAX;
  const biasCos = Math.cos(anat.bias.dir) * anat.bias.amp;
  const biasSin = Math.sin(anat.bias.dir) * anat.bias.amp;
  const s = Math.min(w, h);
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const py = (y + 0.5 - h / 2) / s;
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const pxx = (x + 0.5 - w / 2) / s;
      const bias = 1 + 2 * (biasCos * pxx + biasSin * py);
      const bits = nr.int32();
      const re = image[i] * bias + sigma * normals[bits & 0xffff];
      const im = sigma * normals[bits >>> 16];
      const mag = Math.sqrt(re * re + im * im);
      out[i] = tone[Math.min(tone.length - 1, Math.round(mag * toneScale))];
    }
  }
  return out;
}

/**
 * Draws one slice at `w`×`h` as grey levels. Anatomy, texture, noise and
 * contrast depend on the seed only; the label only adds its lesion.
 */
function renderGray(
  label: SyntheticClass,
  seed: number,
  w: number,
  h: number,
): Uint8Array {
  const anat = sampleAnatomy(rng(deriveSeed(seed, "anatomy")));
  const lesion = sampleLesion(
    label,
    rng(deriveSeed(seed, `lesion/${label}`)),
    anat,
  );
  const tex = sampleTextures(seed, w, h);
  const g = geometry(anat, w, h);
  const canvas: Canvas = {
    anat,
    g,
    tex,
    inner: skullInner(anat),
    rb: brainEdge(anat),
    pw: 1.2 * g.px,
  };
  const image = paintHead(canvas, paintAdditions(canvas, lesion));
  return toGreyLevels(image, anat, seed, g);
}

function checkLabel(label: string, where: string): SyntheticClass {
  if (!(SYNTHETIC_CLASSES as readonly string[]).includes(label)) {
    throw new Error(
      `${where}: unknown label ${JSON.stringify(label)}; expected one of ${
        SYNTHETIC_CLASSES.join(", ")
      }`,
    );
  }
  return label as SyntheticClass;
}

function checkSide(value: number, name: string, where: string): number {
  if (!Number.isInteger(value) || value < 32 || value > 4096) {
    throw new Error(
      `${where}: ${name} must be an integer from 32 to 4096, got ${value}`,
    );
  }
  return value;
}

/**
 * Draws one synthetic slice and returns its raw grey levels (row-major,
 * `size`×`size`, one byte per pixel) — no files. The same seed gives the same
 * anatomy, texture, noise and contrast for every label: only the lesion
 * differs, which makes side-by-side comparisons easy.
 *
 * @example A pituitary slice and the same head without the tumour
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderSlice } from "./synthetic.ts";
 * const size = 64;
 * const tumour = renderSlice({ label: "pituitary", seed: 7, size });
 * const healthy = renderSlice({ label: "notumor", seed: 7, size });
 * assert.equal(tumour.length, size * size);
 * assert.deepEqual(renderSlice({ label: "pituitary", seed: 7, size }), tumour);
 * // Only the small lesion differs: same anatomy, noise and contrast.
 * const changed = tumour.filter((v, i) => v !== healthy[i]).length;
 * assert.ok(changed > 0 && changed < tumour.length / 10);
 * ```
 */
export function renderSlice(options: RenderSliceOptions): Uint8Array {
  const where = "renderSlice";
  const label = checkLabel(options.label, where);
  if (!Number.isFinite(options.seed)) {
    throw new Error(
      `${where}: seed must be a finite number, got ${options.seed}`,
    );
  }
  const size = checkSide(options.size ?? INTERNAL_SIZE, "size", where);
  return renderGray(label, options.seed, size, size);
}

// ---------------------------------------------------------------------------
// Dataset
// ---------------------------------------------------------------------------

interface Resolved {
  outDir: string;
  seed: number;
  trainPerClass: number;
  testPerClass: number;
  sizes: [number, number][];
  quality: number;
}

interface Job {
  split: "Training" | "Testing";
  label: SyntheticClass;
  index: number;
  dir: string;
  name: string;
  seed: number;
  width: number;
  height: number;
}

const SPLITS = [
  { split: "Training", prefix: "Tr", key: "trainPerClass" },
  { split: "Testing", prefix: "Te", key: "testPerClass" },
] as const;

const OUR_FILE = /^(Tr|Te)-(gl|me|no|pi)_\d+\.jpg$/;
const OUR_TEMP = /^\.(Tr|Te)-(gl|me|no|pi)_\d+\.jpg\..*\.tmp$/;

function resolveOptions(options: SyntheticOptions): Resolved {
  const where = "generateSyntheticDataset";
  if (typeof options.outDir !== "string" || options.outDir.trim() === "") {
    throw new Error(`${where}: outDir must be a non-empty path`);
  }
  const seed = options.seed ?? DEFAULTS.seed;
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`${where}: seed must be an integer, got ${seed}`);
  }
  const count = (value: number, name: string) => {
    if (!Number.isInteger(value) || value < 0 || value > 99999) {
      throw new Error(
        `${where}: ${name} must be an integer from 0 to 99999, got ${value}`,
      );
    }
    return value;
  };
  const sizes = (options.sizes ?? SYNTHETIC_DEFAULT_SIZES).map(
    (size): [number, number] =>
      typeof size === "number" ? [checkSide(size, "sizes", where), size] : [
        checkSide(size[0], "sizes", where),
        checkSide(size[1], "sizes", where),
      ],
  );
  if (sizes.length === 0) throw new Error(`${where}: sizes must not be empty`);
  const quality = options.quality ?? SYNTHETIC_DEFAULTS.quality;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new Error(
      `${where}: quality must be an integer from 1 to 100, got ${quality}`,
    );
  }
  return {
    outDir: resolve(options.outDir),
    seed,
    trainPerClass: count(
      options.trainPerClass ?? SYNTHETIC_DEFAULTS.trainPerClass,
      "trainPerClass",
    ),
    testPerClass: count(
      options.testPerClass ?? SYNTHETIC_DEFAULTS.testPerClass,
      "testPerClass",
    ),
    sizes,
    quality,
  };
}

function plan(o: Resolved): Job[] {
  const jobs: Job[] = [];
  for (const { split, prefix, key } of SPLITS) {
    for (const label of SYNTHETIC_CLASSES) {
      const dir = join(o.outDir, split, label);
      for (let index = 0; index < o[key]; index++) {
        const seed = deriveSeed(o.seed, `${split}/${label}/${index}`);
        const [width, height] = rng(deriveSeed(seed, "size")).pick(o.sizes);
        const name = `${prefix}-${SYNTHETIC_ABBREVIATIONS[label]}_${
          String(index).padStart(4, "0")
        }.jpg`;
        jobs.push({ split, label, index, dir, name, seed, width, height });
      }
    }
  }
  return jobs;
}

function markerText(o: Resolved, complete: boolean): string {
  const settings = {
    generator: "brain-mri-cnn lib/data/synthetic.ts",
    version: SYNTHETIC_VERSION,
    seed: o.seed,
    trainPerClass: o.trainPerClass,
    testPerClass: o.testPerClass,
    sizes: o.sizes.map(([w, h]) => w === h ? w : [w, h]),
    quality: o.quality,
    internalSize: INTERNAL_SIZE,
    classes: SYNTHETIC_CLASSES,
    files: SYNTHETIC_CLASSES.length * (o.trainPerClass + o.testPerClass),
  };
  return [
    "# ⚠️ SYNTHETIC DATA — NOT REAL MRI SCANS ⚠️",
    "",
    "**EVERY IMAGE IN THIS FOLDER IS SYNTHETIC.** The images were drawn by a",
    "program (`lib/data/synthetic.ts` of brain-mri-cnn) from seeded random numbers:",
    "no patient, no scanner, no real tumour. They only imitate the layout of",
    'the Kaggle "Brain Tumor MRI Dataset" (Training/ and Testing/, one folder',
    "per class) so that the project runs end to end without the real data.",
    "",
    "**Do not use them for any medical purpose, and never report a model's",
    "accuracy on them as accuracy on brain MRI.**",
    "",
    complete
      ? "Status: complete."
      : "Status: **GENERATION IN PROGRESS — this dataset is incomplete.**",
    "",
    "Regenerate with the same settings (byte-identical output with the same",
    "sharp/libvips build):",
    "",
    "```sh",
    `deno run -A lib/data/synthetic.ts --out <dir> --seed ${o.seed} --train-per-class ${o.trainPerClass} --test-per-class ${o.testPerClass} --sizes ${
      o.sizes.map(([w, h]) => w === h ? `${w}` : `${w}x${h}`).join(",")
    } --quality ${o.quality}`,
    "```",
    "",
    "Settings:",
    "",
    "```json",
    "{",
    Object.entries(settings)
      .map(([key, value]) =>
        `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`
      )
      .join(",\n"),
    "}",
    "```",
    "",
  ].join("\n");
}

async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function listOrEmpty(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function allPresent(jobs: Job[]): Promise<boolean> {
  for (const job of jobs) {
    try {
      const info = await Deno.stat(join(job.dir, job.name));
      if (!info.isFile || info.size === 0) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Refuses to write into a dataset folder that is not a synthetic one. */
async function refuseForeign(o: Resolved): Promise<void> {
  for (const { split } of SPLITS) {
    if ((await listOrEmpty(join(o.outDir, split))).length > 0) {
      throw new Error(
        `generateSyntheticDataset: ${
          join(o.outDir, split)
        } already holds data and ${o.outDir} has no ${SYNTHETIC_MARKER} marker; ` +
          "refusing to mix synthetic images into what may be a real dataset " +
          "(choose an empty folder)",
      );
    }
  }
}

/** Removes our own file names that the new plan does not include. */
async function removeStale(o: Resolved, jobs: Job[]): Promise<void> {
  const wanted = new Set(jobs.map((job) => join(job.dir, job.name)));
  for (const { split } of SPLITS) {
    for (const label of SYNTHETIC_CLASSES) {
      const dir = join(o.outDir, split, label);
      for (const entry of await listOrEmpty(dir)) {
        const path = join(dir, entry.name);
        if (!entry.isFile || wanted.has(path)) continue;
        if (OUR_FILE.test(entry.name) || OUR_TEMP.test(entry.name)) {
          await Deno.remove(path);
        }
      }
    }
  }
}

/** Draws and encodes one image as a 3-channel JPEG. */
async function encode(job: Job, quality: number): Promise<Uint8Array> {
  const scale = INTERNAL_SIZE / Math.max(job.width, job.height);
  const w = Math.min(job.width, Math.max(16, Math.round(job.width * scale)));
  const h = Math.min(job.height, Math.max(16, Math.round(job.height * scale)));
  const pixels = renderGray(job.label, job.seed, w, h);
  let image = sharp(pixels, { raw: { width: w, height: h, channels: 1 } });
  if (w !== job.width || h !== job.height) {
    image = image.resize(job.width, job.height, {
      fit: "fill",
      kernel: "lanczos3",
    });
  }
  const buffer = await image
    .toColourspace("srgb")
    .jpeg({
      quality,
      mozjpeg: false,
      progressive: false,
      chromaSubsampling: "4:2:0",
      optimiseCoding: true,
    })
    .toBuffer();
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function countsOf(o: Resolved): Record<string, Record<string, number>> {
  const counts: Record<string, Record<string, number>> = {};
  for (const { split, key } of SPLITS) {
    counts[split] = Object.fromEntries(
      SYNTHETIC_CLASSES.map((label) => [label, o[key]]),
    );
  }
  return counts;
}

/**
 * Writes a synthetic dataset in the Kaggle layout:
 * `<outDir>/Training/<class>/Tr-<abbr>_NNNN.jpg` and
 * `<outDir>/Testing/<class>/Te-<abbr>_NNNN.jpg` (abbreviations `gl`, `me`,
 * `no`, `pi`), as 3-channel grey-looking JPEGs of varied sizes, plus a
 * `SYNTHETIC.md` marker that says so and records the settings.
 *
 * Idempotent: when `outDir` already holds a complete dataset made with the
 * same settings (same marker text, every file present), it returns at once
 * with `reused: true`. When an earlier synthetic dataset with other settings
 * is there, it is regenerated in place and surplus files of ours are removed.
 * It refuses to write into a `Training/` or `Testing/` folder that has data
 * but no marker, as that may be a real dataset.
 *
 * @example Make a small dataset in a temporary folder, then find it made
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateSyntheticDataset } from "./synthetic.ts";
 * const dir = await Deno.makeTempDir();
 * const options = { outDir: dir, seed: 1, trainPerClass: 3, testPerClass: 1, sizes: [64] };
 * const result = await generateSyntheticDataset(options);
 * assert.equal(result.files, 4 * (3 + 1));
 * assert.equal(result.counts.Training.glioma, 3);
 * assert.equal(result.reused, false);
 * assert.equal((await generateSyntheticDataset(options)).reused, true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function generateSyntheticDataset(
  options: SyntheticOptions,
): Promise<SyntheticDatasetResult> {
  const o = resolveOptions(options);
  const jobs = plan(o);
  const markerPath = join(o.outDir, SYNTHETIC_MARKER);
  const finalMarker = markerText(o, true);
  const result = {
    outDir: o.outDir,
    counts: countsOf(o),
    files: jobs.length,
  };
  const existing = await readTextOrNull(markerPath);
  if (existing === finalMarker && await allPresent(jobs)) {
    return { ...result, reused: true };
  }
  if (existing === null) await refuseForeign(o);
  await writeTextAtomic(markerPath, markerText(o, false));
  await removeStale(o, jobs);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      const bytes = await encode(job, o.quality);
      await writeFileAtomic(join(job.dir, job.name), bytes);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  await writeTextAtomic(markerPath, finalMarker);
  return { ...result, reused: false };
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

/** The generator's command line: every flag with its type, default and help. */
export const SYNTHETIC_CLI = {
  command: "deno run -A lib/data/synthetic.ts",
  summary:
    'Writes a SYNTHETIC MRI-like dataset in the Kaggle "Brain Tumor MRI\n' +
    'Dataset" layout (DIR/Training/<class>/*.jpg, DIR/Testing/<class>/*.jpg)\n' +
    "plus a SYNTHETIC.md marker. Re-running with the same settings is a no-op.",
  flags: {
    out: { type: "string", value: "DIR", help: "where to write, required" },
    seed: { type: "integer", default: DEFAULTS.seed, help: "base seed" },
    "train-per-class": {
      type: "integer",
      default: SYNTHETIC_DEFAULTS.trainPerClass,
      help: "Training images per class",
    },
    "test-per-class": {
      type: "integer",
      default: SYNTHETIC_DEFAULTS.testPerClass,
      help: "Testing images per class",
    },
    sizes: {
      type: "string",
      value: "LIST",
      defaultText: "a mix like the Kaggle set's",
      help: "image sizes to draw from, e.g.\n256,300,450x504",
    },
    quality: {
      type: "integer",
      default: SYNTHETIC_DEFAULTS.quality,
      help: "JPEG quality",
    },
  },
} as const;

function parseSizes(text: string): SyntheticSize[] {
  return text.split(",").map((part) => {
    const match = /^\s*(\d+)(?:\s*x\s*(\d+))?\s*$/.exec(part);
    if (!match) {
      throw new UsageError(
        `--sizes must look like 256,300,450x504, got ${JSON.stringify(text)}`,
      );
    }
    return match[2] === undefined
      ? Number(match[1])
      : [Number(match[1]), Number(match[2])] as const;
  });
}

/** Generates the dataset the command line describes and says what it did. */
async function generate(options: SyntheticOptions): Promise<void> {
  const start = performance.now();
  const result = await generateSyntheticDataset(options);
  const seconds = (performance.now() - start) / 1000;
  if (result.reused) {
    console.log(
      `${result.outDir} already holds this synthetic dataset ` +
        `(${result.files} images); nothing to do.`,
    );
  } else {
    console.log(
      `Wrote ${result.files} SYNTHETIC images to ${result.outDir} in ` +
        `${seconds.toFixed(2)} s (${
          (result.files / seconds).toFixed(0)
        } images/s).`,
    );
  }
}

async function main(
  { values }: ParsedCli<typeof SYNTHETIC_CLI>,
): Promise<number> {
  if (values.out === undefined) throw new UsageError("--out is required");
  const options: SyntheticOptions = {
    outDir: values.out,
    seed: values.seed,
    trainPerClass: values["train-per-class"],
    testPerClass: values["test-per-class"],
    sizes: values.sizes === undefined ? undefined : parseSizes(values.sizes),
    quality: values.quality,
  };
  try {
    await generate(options);
    return 0;
  } catch (error) {
    console.error(`error: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(SYNTHETIC_CLI, main));
