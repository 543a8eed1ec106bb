/**
 * Stage 1 of the pipeline: from image files to leak-free splits.
 *
 * Finding the scans on disk, decoding and resizing them, caching the result,
 * the duplicate audit, duplicate-aware seeded splits, on-the-fly augmentation,
 * the synthetic default dataset and the Kaggle download. `prepareData`
 * (prepare.ts) runs the whole stage in one call. Imports only `core/`.
 *
 * | module | what |
 * | --- | --- |
 * | `audit.ts` | Duplicate and leakage audit of an image dataset |
 * | `augment.ts` | On-the-fly data augmentation for training batches |
 * | `checksum.ts` | SHA-256 checksums of archives, verified before they are unpacked |
 * | `dataset.ts` | Finding the images of a dataset on disk |
 * | `decode_gate.ts` | Decoding images side by side without losing the decoder's words |
 * | `image_header.ts` | Reading an image's header before decoding it: format, claimed size, consistent markers, the pixel limit |
 * | `image_cache.ts` | A disk cache of preprocessed images, so only the first run pays for decoding |
 * | `kaggle.ts` | Fetching the brain-tumour MRI dataset from Kaggle: `deno task data:download` |
 * | `phash.ts` | Perceptual and exact image hashes, for finding duplicate scans |
 * | `prepare.ts` | The data pipeline in one call: find the dataset (or make the synthetic default), decode and… |
 * | `preprocess.ts` | Turning image files into small one-channel uint8 arrays for the CNN: decode → grayscale → resize… |
 * | `split.ts` | Duplicate-aware, stratified, seeded train / validation / test splits |
 * | `synthetic.ts` | The embedded default dataset: a seeded generator of synthetic, MRI-like axial brain slices,… |
 * | `unzip.ts` | Unpacking a zip archive onto disk without trusting it: streamed with bounded memory, caps on size, ratio and entries |
 *
 * @module
 */
export * from "./audit.ts";
export * from "./augment.ts";
export * from "./checksum.ts";
export * from "./dataset.ts";
export * from "./decode_gate.ts";
export * from "./image_cache.ts";
export * from "./image_header.ts";
export * from "./kaggle.ts";
export * from "./phash.ts";
export * from "./prepare.ts";
export * from "./preprocess.ts";
export * from "./split.ts";
export * from "./synthetic.ts";
export * from "./unzip.ts";
