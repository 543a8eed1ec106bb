/**
 * Fetching the brain-tumour MRI dataset from Kaggle: `deno task data:download`.
 *
 * The dataset (`masoudnickparvar/brain-tumor-mri-dataset`) is one zip file
 * holding `Training/<class>/*.jpg` and `Testing/<class>/*.jpg`. This module
 * downloads it through Kaggle's public API and unpacks it under the project's
 * data folder ({@linkcode projectPaths}`().data`):
 *
 * 1. Credentials come from `KAGGLE_USERNAME`/`KAGGLE_KEY`, else from
 *    `kaggle.json` in `KAGGLE_CONFIG_DIR` or `~/.kaggle/`. Without them the
 *    error says exactly how to get a token or how to unpack the zip by hand.
 * 2. `GET {api}/datasets/download/{owner}/{name}` with HTTP Basic auth. The
 *    API answers with a redirect to a signed storage URL; redirects are
 *    followed by hand so that the `Authorization` header never leaves the
 *    API's origin.
 * 3. The bytes go to `<data>/.download/<name>.zip.partial`. A later run
 *    resumes it with `Range: bytes=N-` (and `If-Range` with the ETag seen
 *    first); a server that ignores the range (200) restarts from zero, and a
 *    416 either confirms the partial file is complete or starts over.
 * 4. Verification: the byte count against `Content-Length`/`Content-Range`,
 *    the MD5 from `x-goog-hash`, a 32-hex-digit strong `ETag` or
 *    `Content-MD5` when the server sends one, the SHA-256 given with
 *    `--sha256`, then the zip's central directory and every entry's CRC-32
 *    while unpacking. Only then is the `.partial` renamed to `<name>.zip`,
 *    with its SHA-256 recorded beside it in `<name>.zip.sha256`; a later run
 *    that unpacks the kept zip checks it against that record first.
 * 5. Unpacking ({@linkcode unzipFile}) streams each entry into a temporary
 *    folder inside `<data>/.download/` with bounded memory, and refuses the
 *    archive — naming it, the entry and the cap — for unsafe names (`..`,
 *    absolute paths, links, a file where a folder should be), or when it
 *    unpacks to more than `--max-unpacked-bytes` in all, has too many entries
 *    or an entry that expands like a zip bomb. `Training/` and `Testing/`
 *    (also when wrapped in one extra folder; every class folder holding
 *    files) are then renamed into place, and a manifest of the per-class
 *    file counts is written, so a second run sees the data is complete and
 *    does nothing (`--force` redoes everything). A refused archive leaves
 *    nothing half-installed.
 *
 * `--zip FILE` unpacks a zip the user already has instead (no credentials,
 * no network), with the same checks; its SHA-256 is verified first when
 * `FILE.sha256` exists or `--sha256` is given.
 *
 * The Kaggle key is never printed or put into an error message.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import cliProgress from "cli-progress";
import { writeTextAtomic } from "../core/atomic.ts";
import { DEFAULTS } from "../core/defaults.ts";
import { projectPaths } from "../core/paths.ts";
import { type ParsedCli, runCli, UsageError } from "../core/cli.ts";
import {
  ChecksumError,
  type ExpectedSha256,
  parseSha256,
  readSha256Sidecar,
  sha256SidecarPath,
  verifySha256,
  writeSha256Sidecar,
} from "./checksum.ts";
import { UnzipError, unzipFile, type UnzipLimits } from "./unzip.ts";

/** The Kaggle dataset this project trains on. */
export const DEFAULT_DATASET = "masoudnickparvar/brain-tumor-mri-dataset";

/** Kaggle's public API; `KAGGLE_API_BASE` or the `apiBase` option override it. */
export const DEFAULT_KAGGLE_API_BASE = "https://www.kaggle.com/api/v1";

/** The top-level folders the dataset zip holds, one per split. */
export const DATASET_SPLITS: readonly string[] = ["Training", "Testing"];

const USER_AGENT = "brain-mri-cnn (deno)";
const MAX_REDIRECTS = 10;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** A Kaggle API token: the contents of `kaggle.json`. */
export interface KaggleCredentials {
  /** The Kaggle user name. */
  username: string;
  /** The API key (secret; never printed). */
  key: string;
}

/**
 * A failure the user can act on (missing credentials, HTTP errors, a corrupt
 * or interrupted download). The CLI prints its message without a stack trace.
 */
export class KaggleError extends Error {
  /**
   * Makes the error.
   *
   * @param message what went wrong and what to do about it
   * @param options the error that caused it, if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KaggleError";
  }
}

/** No usable Kaggle credentials; the message says how to provide them. */
export class KaggleCredentialsError extends KaggleError {
  /**
   * Makes the error.
   *
   * @param message what is missing and how to fix it
   */
  constructor(message: string) {
    super(message);
    this.name = "KaggleCredentialsError";
  }
}

type Env = Record<string, string | undefined>;

/** Options for {@linkcode findKaggleCredentials}. */
export interface FindKaggleCredentialsOptions {
  /** Environment to read; defaults to `Deno.env`. */
  env?: Record<string, string | undefined>;
  /** Home folder holding `.kaggle/`; defaults to `HOME` (or `USERPROFILE`). */
  home?: string;
}

function envGetter(env: Env | undefined): (name: string) => string | undefined {
  return (name) => {
    const value = env ? env[name] : Deno.env.get(name);
    return value === undefined || value.trim() === ""
      ? undefined
      : value.trim();
  };
}

/** Where `kaggle.json` is looked for, given the environment. */
function kaggleJsonPath(
  options: FindKaggleCredentialsOptions,
): string | undefined {
  const get = envGetter(options.env);
  const configDir = get("KAGGLE_CONFIG_DIR");
  if (configDir !== undefined) return join(configDir, "kaggle.json");
  const home = options.home ?? get("HOME") ?? get("USERPROFILE");
  return home === undefined ? undefined : join(home, ".kaggle", "kaggle.json");
}

/**
 * Finds Kaggle API credentials: `KAGGLE_USERNAME` and `KAGGLE_KEY` when both
 * are set, else `kaggle.json` in `KAGGLE_CONFIG_DIR` or `<home>/.kaggle/`.
 * Returns `undefined` when there are none; throws {@linkcode
 * KaggleCredentialsError} naming the file when `kaggle.json` exists but is not
 * `{"username": ..., "key": ...}` (without echoing its contents).
 *
 * @example Look up credentials from a given environment and home folder
 * ```ts
 * import assert from "node:assert/strict";
 * import { findKaggleCredentials } from "./kaggle.ts";
 * const home = await Deno.makeTempDir(); // no .kaggle/ in it
 * assert.deepEqual(
 *   findKaggleCredentials({
 *     env: { KAGGLE_USERNAME: "ada", KAGGLE_KEY: "0123abcd" },
 *     home,
 *   }),
 *   { username: "ada", key: "0123abcd" },
 * );
 * assert.equal(findKaggleCredentials({ env: {}, home }), undefined);
 * await Deno.remove(home);
 * ```
 */
export function findKaggleCredentials(
  options: FindKaggleCredentialsOptions = {},
): KaggleCredentials | undefined {
  const get = envGetter(options.env);
  const username = get("KAGGLE_USERNAME");
  const key = get("KAGGLE_KEY");
  if (username !== undefined && key !== undefined) return { username, key };
  const path = kaggleJsonPath(options);
  if (path === undefined || !existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    // The parser's message can quote the file, i.e. the key: leave it out.
    const why = error instanceof SyntaxError
      ? "is not valid JSON"
      : `cannot be read (${(error as Error).name})`;
    throw new KaggleCredentialsError(
      `${path} ${why}; it must hold {"username": "...", "key": "..."} ` +
        `as downloaded from kaggle.com → Settings → API → "Create New Token".`,
    );
  }
  const record = parsed as Record<string, unknown> | null;
  const fileUser = record?.username;
  const fileKey = record?.key;
  if (
    typeof fileUser !== "string" || fileUser.trim() === "" ||
    typeof fileKey !== "string" || fileKey.trim() === ""
  ) {
    throw new KaggleCredentialsError(
      `${path} must hold {"username": "...", "key": "..."} with non-empty ` +
        `strings; download a fresh one from kaggle.com → Settings → API → ` +
        `"Create New Token".`,
    );
  }
  return { username: fileUser.trim(), key: fileKey.trim() };
}

function missingCredentialsMessage(
  dataset: string,
  dest: string,
  lookedAt: string | undefined,
): string {
  return [
    `No Kaggle API credentials found (looked for KAGGLE_USERNAME + KAGGLE_KEY` +
    (lookedAt ? ` and ${lookedAt}).` : `; no home folder to look in).`),
    `To let this command download ${dataset}, do one of:`,
    `  1. On kaggle.com open Settings → API → "Create New Token". Put the ` +
    `kaggle.json it downloads in ~/.kaggle/ and run: ` +
    `chmod 600 ~/.kaggle/kaggle.json`,
    `     (or put it in another folder and set KAGGLE_CONFIG_DIR to that folder).`,
    `  2. Set the environment variables KAGGLE_USERNAME and KAGGLE_KEY to the ` +
    `"username" and "key" from that kaggle.json.`,
    `Or skip the API: download the zip by hand from ` +
    `https://www.kaggle.com/datasets/${dataset} and unpack it so that ` +
    `${join(dest, "Training")} and ${join(dest, "Testing")} exist,`,
    `or set BRAIN_MRI_DATA to a folder that already holds Training/ and Testing/.`,
  ].join("\n");
}

/** Options for {@linkcode downloadKaggleDataset}. */
export interface DownloadKaggleDatasetOptions {
  /** `owner/name` of the dataset; defaults to {@linkcode DEFAULT_DATASET}. */
  dataset?: string;
  /** Folder receiving `Training/` and `Testing/`; defaults to `projectPaths().data`. */
  dest?: string;
  /** API base URL; defaults to `KAGGLE_API_BASE`, else {@linkcode DEFAULT_KAGGLE_API_BASE}. */
  apiBase?: string;
  /** Credentials; defaults to {@linkcode findKaggleCredentials}. */
  credentials?: KaggleCredentials;
  /** Download and unpack again even when the data is complete. */
  force?: boolean;
  /**
   * Called as bytes arrive (`received` counts a resumed file's earlier bytes;
   * `total` is `undefined` when the server does not say). When given, no
   * progress bar or progress lines are shown.
   */
  onProgress?: (received: number, total?: number) => void;
  /** The `fetch` to use; defaults to the global one. */
  fetch?: typeof fetch;
  /** Environment for `KAGGLE_API_BASE`, credentials and `BRAIN_MRI_DATA`; defaults to `Deno.env`. */
  env?: Record<string, string | undefined>;
  /** Home folder for `~/.kaggle/kaggle.json`; defaults to `HOME`. */
  home?: string;
  /** Where status messages go; defaults to `console.log`. */
  log?: (message: string) => void;
  /** Abort when no bytes arrive for this long (milliseconds); default 60 000. */
  idleTimeoutMs?: number;
  /** The zip's SHA-256 (hex), checked before it is unpacked. */
  sha256?: string;
  /** Caps on unpacking; the others keep their defaults (`UNZIP_LIMITS`). */
  limits?: Partial<UnzipLimits>;
}

/** What {@linkcode downloadKaggleDataset} did. */
export interface DownloadKaggleDatasetResult {
  /** The folder holding `Training/` and `Testing/`. */
  dest: string;
  /** The verified zip (`<dest>/.download/<name>.zip`); it may not exist when `skipped`. */
  zip: string;
  /** Bytes transferred over the network by this call. */
  bytes: number;
  /** Whether this call continued an earlier partial download. */
  resumed: boolean;
  /** Files now under `Training/` and `Testing/`. */
  files: number;
  /** `true` when the data was already complete and nothing was done. */
  skipped: boolean;
}

interface PartialMeta {
  dataset: string;
  total?: number;
  etag?: string;
  md5?: string;
}

interface Manifest {
  dataset: string;
  zipBytes: number;
  files: number;
  splits: Record<string, Record<string, number>>;
}

function parseDataset(dataset: string): { owner: string; name: string } {
  const match = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)$/.exec(dataset);
  if (!match) {
    throw new KaggleError(
      `bad dataset "${dataset}": expected owner/name, e.g. ${DEFAULT_DATASET}`,
    );
  }
  return { owner: match[1], name: match[2] };
}

/**
 * Downloads a Kaggle dataset zip (resumable, verified) and unpacks it so that
 * `<dest>/Training/<class>/…` and `<dest>/Testing/<class>/…` exist. Does
 * nothing when that data is already complete, unless `force` is set.
 *
 * Throws {@linkcode KaggleCredentialsError} when a download is needed and no
 * credentials are found, and {@linkcode KaggleError} for HTTP errors,
 * interrupted transfers (run again to resume), checksum mismatches and
 * corrupt or unsafe zips (nothing half-unpacked is left behind).
 *
 * @example Download into the project's data folder
 *
 * Needs Kaggle credentials and the network, so it is not run by
 * `deno test --doc`.
 *
 * ```ts ignore
 * import { downloadKaggleDataset } from "./kaggle.ts";
 * const result = await downloadKaggleDataset({});
 * console.log(`${result.files} files in ${result.dest}`);
 * ```
 */
export async function downloadKaggleDataset(
  options: DownloadKaggleDatasetOptions = {},
): Promise<DownloadKaggleDatasetResult> {
  const target = downloadTarget(options);
  const log = options.log ?? ((message: string) => console.log(message));
  const unpack = unpackSettings(options);
  if (!options.force) {
    const present = await alreadyUnpacked(target, log);
    if (present !== undefined) return present;
  }
  await Deno.mkdir(target.downloadDir, { recursive: true });
  if (!options.force && await isFile(target.zip)) {
    return await unpackKeptZip(target, { ...unpack, log });
  }
  const credentials = requireCredentials(options, target);
  if (options.force) await discardKeptZip(target);
  const transfer = await downloadToPartial({
    url: downloadUrl(options, target),
    dataset: target.dataset,
    partial: target.partial,
    metaPath: target.metaPath,
    credentials,
    fetch: options.fetch ?? fetch,
    onProgress: options.onProgress,
    log,
    label: target.name,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  });
  const files = await unpackDownload(target, { ...unpack, log });
  return {
    dest: target.dest,
    zip: target.zip,
    bytes: transfer.bytes,
    resumed: transfer.resumed,
    files,
    skipped: false,
  };
}

/** Options for {@linkcode installDatasetZip}. */
export interface InstallDatasetZipOptions {
  /** The zip file to unpack. */
  zip: string;
  /** Folder receiving `Training/` and `Testing/`; defaults to `projectPaths().data`. */
  dest?: string;
  /** `owner/name` the manifest is recorded under; defaults to {@linkcode DEFAULT_DATASET}. */
  dataset?: string;
  /** The zip's SHA-256 (hex); `<zip>.sha256` is checked too when it exists. */
  sha256?: string;
  /** Caps on unpacking; the others keep their defaults (`UNZIP_LIMITS`). */
  limits?: Partial<UnzipLimits>;
  /** Environment for `BRAIN_MRI_DATA`; defaults to `Deno.env`. */
  env?: Record<string, string | undefined>;
  /** Where status messages go; defaults to `console.log`. */
  log?: (message: string) => void;
}

/** What {@linkcode installDatasetZip} did. */
export interface InstallDatasetZipResult {
  /** The folder now holding `Training/` and `Testing/`. */
  dest: string;
  /** The zip that was unpacked. */
  zip: string;
  /** Files now under `Training/` and `Testing/`. */
  files: number;
  /** The zip's SHA-256 (hex). */
  sha256: string;
}

/**
 * Unpacks a dataset zip the user already has — no credentials, no network —
 * with the same checks as a download: its SHA-256 against `<zip>.sha256`
 * and `sha256` when there are any, then the streaming unpack with its caps
 * and the layout check. A copy already in `dest` is replaced only once the
 * new one is complete; the zip itself is never modified or deleted.
 *
 * Throws {@linkcode KaggleError} naming the zip (and the entry, or the
 * expected and actual checksum) when it cannot be used.
 *
 * @example Unpack a downloaded copy of the dataset
 *
 * Needs the dataset zip on disk, so it is not run by `deno test --doc`.
 *
 * ```ts ignore
 * import { installDatasetZip } from "./kaggle.ts";
 * const result = await installDatasetZip({ zip: "brain-tumor-mri-dataset.zip" });
 * console.log(`${result.files} files in ${result.dest}`);
 * ```
 */
export async function installDatasetZip(
  options: InstallDatasetZipOptions,
): Promise<InstallDatasetZipResult> {
  const target = downloadTarget(options);
  const log = options.log ?? ((message: string) => console.log(message));
  const zip = resolve(options.zip);
  const settings = { ...unpackSettings(options), log };
  if (!(await isFile(zip))) {
    throw new KaggleError(`${zip}: no such file (--zip needs a zip file)`);
  }
  log(`Unpacking ${zip} into ${target.dest} …`);
  await Deno.mkdir(target.downloadDir, { recursive: true });
  try {
    const recorded = await readSha256Sidecar(zip);
    const { files, sha256 } = await unpackAndInstall({
      ...unpackPaths(target),
      ...settings,
      zip,
      source: zip,
      expected: [recorded, settings.sha256].filter((e) => e !== undefined),
    });
    return { dest: target.dest, zip, files, sha256 };
  } catch (error) {
    if (error instanceof UnzipError || error instanceof ChecksumError) {
      throw new KaggleError(error.message, { cause: error });
    }
    throw error;
  }
}

/** Where one dataset's download, zip, manifest and data go. */
interface DownloadTarget {
  /** `owner/name`. */
  dataset: string;
  owner: string;
  name: string;
  /** The folder receiving `Training/` and `Testing/`. */
  dest: string;
  /** `<dest>/.download`. */
  downloadDir: string;
  /** The verified zip. */
  zip: string;
  /** The zip while it downloads. */
  partial: string;
  /** What the first response said about the partial file. */
  metaPath: string;
  /** The per-class file counts of the unpacked data. */
  manifestPath: string;
}

function downloadTarget(
  options: Pick<DownloadKaggleDatasetOptions, "dataset" | "dest" | "env">,
): DownloadTarget {
  const dataset = options.dataset ?? DEFAULT_DATASET;
  const { owner, name } = parseDataset(dataset);
  const dest = resolve(options.dest ?? projectPaths({ env: options.env }).data);
  const downloadDir = join(dest, ".download");
  const zip = join(downloadDir, `${name}.zip`);
  const partial = `${zip}.partial`;
  return {
    dataset,
    owner,
    name,
    dest,
    downloadDir,
    zip,
    partial,
    metaPath: `${partial}.json`,
    manifestPath: join(downloadDir, `${name}.manifest.json`),
  };
}

/** The result of a call that found the data complete, or `undefined`. */
async function alreadyUnpacked(
  target: DownloadTarget,
  log: (message: string) => void,
): Promise<DownloadKaggleDatasetResult | undefined> {
  const present = await completeData(target.dest, target.manifestPath);
  if (present === undefined) return undefined;
  log(
    `${target.dataset} is already unpacked in ${target.dest} (${present.files} files` +
      `${present.verified ? "" : ", no manifest: unpacked by hand?"}); ` +
      `nothing to do (use --force to download and unpack it again).`,
  );
  return {
    dest: target.dest,
    zip: target.zip,
    bytes: 0,
    resumed: false,
    files: present.files,
    skipped: true,
  };
}

/** How a call unpacks: the checksum it was given, the caps and the log. */
interface UnpackSettings {
  /** The SHA-256 from the caller (`--sha256`), if any. */
  sha256?: ExpectedSha256;
  limits?: Partial<UnzipLimits>;
  log: (message: string) => void;
}

/** The checksum and caps of the options (the log is added by the caller). */
function unpackSettings(
  options: { sha256?: string; limits?: Partial<UnzipLimits> },
): Omit<UnpackSettings, "log"> {
  let sha256: ExpectedSha256 | undefined;
  if (options.sha256 !== undefined) {
    const hex = parseSha256(options.sha256);
    if (hex === undefined || hex.length !== options.sha256.trim().length) {
      throw new KaggleError(
        `--sha256 must be 64 hex digits (got "${options.sha256}")`,
      );
    }
    sha256 = { hex, source: "--sha256" };
  }
  return { sha256, limits: options.limits };
}

/** Deletes the kept zip, its checksum and any partial download. */
async function discardKeptZip(target: DownloadTarget): Promise<void> {
  const { zip, partial, metaPath } = target;
  for (const path of [zip, sha256SidecarPath(zip), partial, metaPath]) {
    await removeIfExists(path);
  }
}

/**
 * Unpacks a zip an earlier run downloaded, after checking it against the
 * SHA-256 recorded then (and `--sha256`); a corrupt, refused or mismatching
 * one is deleted so that the next run downloads it afresh.
 */
async function unpackKeptZip(
  target: DownloadTarget,
  settings: UnpackSettings,
): Promise<DownloadKaggleDatasetResult> {
  const { zip, dest } = target;
  settings.log(`Unpacking the already downloaded ${zip} …`);
  try {
    const recorded = await readSha256Sidecar(zip);
    const { files } = await unpackAndInstall({
      ...unpackPaths(target),
      ...settings,
      source: zip,
      expected: [recorded, settings.sha256].filter((e) => e !== undefined),
    });
    return { dest, zip, bytes: 0, resumed: false, files, skipped: false };
  } catch (error) {
    if (error instanceof UnzipError || error instanceof ChecksumError) {
      await discardKeptZip(target);
      throw new KaggleError(
        `${error.message}; deleted it, run again to download it afresh.`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** The credentials given or found; throws, saying how to get them, when none. */
function requireCredentials(
  options: DownloadKaggleDatasetOptions,
  target: DownloadTarget,
): KaggleCredentials {
  const { env, home } = options;
  const credentials = options.credentials ??
    findKaggleCredentials({ env, home });
  if (credentials !== undefined) return credentials;
  throw new KaggleCredentialsError(
    missingCredentialsMessage(
      target.dataset,
      target.dest,
      kaggleJsonPath({ env, home }),
    ),
  );
}

/** `GET {api}/datasets/download/{owner}/{name}`. */
function downloadUrl(
  options: DownloadKaggleDatasetOptions,
  target: DownloadTarget,
): string {
  const apiBase =
    (options.apiBase ?? envGetter(options.env)("KAGGLE_API_BASE") ??
      DEFAULT_KAGGLE_API_BASE).replace(/\/+$/, "");
  return `${apiBase}/datasets/download/${encodeURIComponent(target.owner)}/${
    encodeURIComponent(target.name)
  }`;
}

/**
 * Verifies and unpacks the finished `.partial`; only once it is verified end
 * to end does it get its real name. A corrupt download is deleted.
 */
async function unpackDownload(
  target: DownloadTarget,
  settings: UnpackSettings,
): Promise<number> {
  const { partial, metaPath, zip } = target;
  settings.log(`Verifying and unpacking ${partial} …`);
  try {
    const { files } = await unpackAndInstall({
      ...unpackPaths(target),
      ...settings,
      source: partial,
      expected: settings.sha256 ? [settings.sha256] : [],
      beforeInstall: async (sha256) => {
        await Deno.rename(partial, zip);
        await writeSha256Sidecar(zip, sha256);
        await removeIfExists(metaPath);
      },
    });
    return files;
  } catch (error) {
    if (error instanceof UnzipError || error instanceof ChecksumError) {
      for (const path of [partial, metaPath]) await removeIfExists(path);
      const what = error instanceof ChecksumError
        ? "the downloaded file does not match its checksum"
        : "the downloaded file is not a usable zip";
      throw new KaggleError(
        `${what}: ${error.message}; deleted it, run again to download it ` +
          `afresh.`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** The parts of {@linkcode UnpackOptions} a target fixes. */
function unpackPaths(
  target: DownloadTarget,
): Pick<
  UnpackOptions,
  "zip" | "dest" | "downloadDir" | "manifestPath" | "dataset"
> {
  const { zip, dest, downloadDir, manifestPath, dataset } = target;
  return { zip, dest, downloadDir, manifestPath, dataset };
}

// ---------------------------------------------------------------------------
// HTTP: redirects without leaking credentials, resumable transfer, checksums.

interface TransferOptions {
  url: string;
  dataset: string;
  partial: string;
  metaPath: string;
  credentials: KaggleCredentials;
  fetch: typeof fetch;
  onProgress?: (received: number, total?: number) => void;
  log: (message: string) => void;
  label: string;
  idleTimeoutMs: number;
}

function basicAuth(credentials: KaggleCredentials): string {
  const bytes = new TextEncoder().encode(
    `${credentials.username}:${credentials.key}`,
  );
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

/**
 * GET with redirects followed by hand: `Authorization` is sent only while the
 * URL stays on the API's origin (scheme, host and port), and never again once
 * a redirect has left it.
 */
async function getFollowingRedirects(
  url: string,
  headers: Headers,
  options: TransferOptions,
  signal: AbortSignal,
): Promise<Response> {
  const origin = new URL(url).origin;
  let current = new URL(url);
  let sendAuth = true;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (current.origin !== origin) sendAuth = false;
    const requestHeaders = new Headers(headers);
    if (sendAuth) {
      requestHeaders.set("authorization", basicAuth(options.credentials));
    }
    let response: Response;
    try {
      response = await options.fetch(current, {
        headers: requestHeaders,
        redirect: "manual",
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const cause = (error as Error).cause as Error | undefined;
      const detail = [(error as Error).message, cause?.message ?? cause]
        .filter(Boolean).join(": ");
      throw new KaggleError(
        `cannot reach ${current.origin} (${detail}); ` +
          `check the network and run again.`,
      );
    }
    if (!REDIRECT_STATUSES.has(response.status)) return response;
    const location = response.headers.get("location");
    await response.body?.cancel();
    if (!location) {
      throw new KaggleError(
        `HTTP ${response.status} redirect without a Location from ${current.origin}`,
      );
    }
    current = new URL(location, current);
  }
  throw new KaggleError(`more than ${MAX_REDIRECTS} redirects from ${url}`);
}

async function httpError(
  response: Response,
  options: TransferOptions,
): Promise<KaggleError> {
  let detail = "";
  try {
    const text = (await response.text()).trim();
    try {
      const json = JSON.parse(text);
      if (typeof json?.message === "string") detail = json.message;
    } catch {
      detail = text.slice(0, 200);
    }
  } catch {
    // No body to show.
  }
  const suffix = detail ? ` (server said: ${detail})` : "";
  const user = options.credentials.username;
  switch (response.status) {
    case 401:
      return new KaggleError(
        `Kaggle rejected the credentials of user "${user}" (HTTP 401)${suffix}. ` +
          `Create a new token at kaggle.com → Settings → API → "Create New Token" ` +
          `and update ~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY.`,
      );
    case 403:
      return new KaggleError(
        `Kaggle refused the download of ${options.dataset} for user "${user}" ` +
          `(HTTP 403)${suffix}. Open https://www.kaggle.com/datasets/` +
          `${options.dataset} while logged in and accept its terms if asked.`,
      );
    case 404:
      return new KaggleError(
        `Kaggle has no dataset ${options.dataset} (HTTP 404)${suffix}.`,
      );
    default:
      return new KaggleError(
        `downloading ${options.dataset} failed: HTTP ${response.status} ` +
          `${response.statusText}${suffix}.`,
      );
  }
}

/** The MD5 (base64) in `x-goog-hash: crc32c=...,md5=...`, if any. */
function googMd5(headers: Headers): string | undefined {
  const value = headers.get("x-goog-hash");
  if (!value) return undefined;
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim().toLowerCase() === "md5") {
      return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** A strong ETag that is a bare MD5 (as Google Cloud Storage sends), as base64. */
function etagMd5(etag: string | undefined): string | undefined {
  const match = etag ? /^"([0-9a-fA-F]{32})"$/.exec(etag.trim()) : null;
  if (!match) return undefined;
  const hex = match[1];
  let binary = "";
  for (let i = 0; i < 32; i += 2) {
    binary += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  }
  return btoa(binary);
}

function parseContentRange(
  value: string | null,
): { start?: number; end?: number; total?: number } | undefined {
  if (!value) return undefined;
  const match = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(value.trim());
  if (!match) return undefined;
  return {
    start: match[1] === undefined ? undefined : Number(match[1]),
    end: match[2] === undefined ? undefined : Number(match[2]),
    total: match[3] === "*" ? undefined : Number(match[3]),
  };
}

function parseLength(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value.trim())
    ? Number(value.trim())
    : undefined;
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? info.size : undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await fileSize(path)) !== undefined;
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function readMeta(path: string): Promise<PartialMeta | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as PartialMeta;
  } catch {
    return undefined;
  }
}

async function hashFile(hash: Hash, path: string): Promise<void> {
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await file.write(data.subarray(written));
  }
}

function formatMB(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

interface ProgressView {
  update(received: number, total?: number): void;
  stop(): void;
}

interface CliProgressBar {
  start(total: number, value: number, payload?: Record<string, unknown>): void;
  update(value: number, payload?: Record<string, unknown>): void;
  setTotal(total: number): void;
  stop(): void;
}

interface CliProgressModule {
  SingleBar: new (
    options: Record<string, unknown>,
    preset?: unknown,
  ) => CliProgressBar;
  Presets: Record<string, unknown>;
}

/** A `cli-progress` bar on a terminal, else a line every 10 % or 10 s. */
function progressView(
  options: TransferOptions,
  initialTotal: number | undefined,
): ProgressView {
  if (options.onProgress) {
    const callback = options.onProgress;
    return {
      update: (received, total) => callback(received, total),
      stop() {},
    };
  }
  if (Deno.stderr.isTerminal() && initialTotal !== undefined) {
    const { SingleBar, Presets } = cliProgress as unknown as CliProgressModule;
    const bar = new SingleBar({
      format:
        `${options.label} [{bar}] {percentage}% | {mb} / {totalMb} MB | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    }, Presets.shades_classic);
    let started = false;
    return {
      update(received, total) {
        const payload = {
          mb: formatMB(received),
          totalMb: formatMB(total ?? initialTotal),
        };
        if (!started) {
          bar.start(total ?? initialTotal, received, payload);
          started = true;
        } else bar.update(received, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastTime = 0;
  let lastTenth = -1;
  const line = (received: number, total?: number) =>
    options.log(
      total
        ? `  ${options.label}: ${formatMB(received)} / ${formatMB(total)} MB (${
          Math.floor((100 * received) / total)
        }%)`
        : `  ${options.label}: ${formatMB(received)} MB`,
    );
  return {
    update(received, total) {
      const now = Date.now();
      const tenth = total ? Math.floor((10 * received) / total) : -1;
      if (tenth !== lastTenth || now - lastTime >= 10_000) {
        line(received, total);
        lastTime = now;
        lastTenth = tenth;
      }
    },
    stop() {},
  };
}

/** What a finished transfer did. */
interface Transfer {
  /** Bytes received in this run. */
  bytes: number;
  /** Whether it continued an earlier partial file. */
  resumed: boolean;
}

/** Downloads (or resumes) into `partial`; returns when it is complete and verified. */
async function downloadToPartial(options: TransferOptions): Promise<Transfer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const outcome = await attemptTransfer(options);
    if (outcome !== "restart") return outcome;
  }
  throw new KaggleError(
    `could not download ${options.dataset}: the server kept refusing to ` +
      `resume; delete ${options.partial} and run again.`,
  );
}

/**
 * Aborts a transfer once no bytes have arrived for `ms` milliseconds;
 * {@linkcode IdleTimer.arm} starts the clock again.
 */
class IdleTimer {
  readonly #controller = new AbortController();
  readonly #ms: number;
  readonly #reason: KaggleError;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.#reason = new KaggleError(
      `no data from the server for ${ms / 1000} s; run again to resume.`,
    );
    this.arm();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => this.#controller.abort(this.#reason),
      this.#ms,
    );
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** One request for the file: what the partial file held, and its idle timer. */
interface Attempt {
  options: TransferOptions;
  /** Bytes already in the partial file. */
  offset: number;
  /** What the first response said about it, when it still applies. */
  meta?: PartialMeta;
  idle: IdleTimer;
}

/**
 * One request: resume point → request → what the answer allows → checksums
 * → body → verification. `"restart"` when the partial file had to be dropped.
 */
async function attemptTransfer(
  options: TransferOptions,
): Promise<Transfer | "restart"> {
  const attempt = await resumePoint(options);
  try {
    const response = await getFollowingRedirects(
      options.url,
      requestHeaders(attempt),
      options,
      attempt.idle.signal,
    );
    if (response.status === 416) {
      return await rangeNotSatisfiable(attempt, response);
    }
    await refuseUnusable(response, options);
    const plan = await planBody(attempt, response);
    if (plan === undefined) return "restart";
    const checks = await prepareChecks(attempt, response, plan);
    const received = await receiveBody(attempt, response, { plan, checks });
    return await verifyTransfer(attempt, { plan, checks, received });
  } finally {
    attempt.idle.clear();
  }
}

/** How much of the file is there already, and what is known about it. */
async function resumePoint(options: TransferOptions): Promise<Attempt> {
  const { partial, metaPath } = options;
  const offset = (await fileSize(partial)) ?? 0;
  let meta = offset > 0 ? await readMeta(metaPath) : undefined;
  if (meta && meta.dataset !== options.dataset) meta = undefined;
  if (offset === 0) await removeIfExists(metaPath);
  if (offset > 0) {
    options.log(
      `Resuming the download of ${options.dataset} at ${formatMB(offset)} MB …`,
    );
  } else {
    options.log(
      `Downloading ${options.dataset} from ${new URL(options.url).origin} …`,
    );
  }
  return { options, offset, meta, idle: new IdleTimer(options.idleTimeoutMs) };
}

/** No compression; `Range` (and `If-Range` with a strong ETag) when resuming. */
function requestHeaders({ offset, meta }: Attempt): Headers {
  const headers = new Headers({
    "accept-encoding": "identity",
    "user-agent": USER_AGENT,
  });
  if (offset > 0) {
    headers.set("range", `bytes=${offset}-`);
    if (meta?.etag && !meta.etag.startsWith("W/")) {
      headers.set("if-range", meta.etag);
    }
  }
  return headers;
}

/**
 * A 416: either the partial file is complete already (an earlier run got
 * every byte but stopped before renaming) or it is dropped to start over.
 */
async function rangeNotSatisfiable(
  { options, offset, meta }: Attempt,
  response: Response,
): Promise<Transfer | "restart"> {
  const total = parseContentRange(response.headers.get("content-range"))
    ?.total ?? meta?.total;
  await response.body?.cancel();
  if (offset > 0 && total === offset) {
    if (meta?.md5) await verifyWholeMd5(options.partial, meta.md5, options);
    options.log(
      `The partial download was already complete (${formatMB(offset)} MB).`,
    );
    return { bytes: 0, resumed: true };
  }
  options.log("The server cannot resume this partial download; starting over.");
  await removeIfExists(options.partial);
  return "restart";
}

/** Throws for an HTTP error, or for a compressed body (neither verifiable nor resumable). */
async function refuseUnusable(
  response: Response,
  options: TransferOptions,
): Promise<void> {
  if (response.status !== 200 && response.status !== 206) {
    throw await httpError(response, options);
  }
  const encoding = response.headers.get("content-encoding");
  if (encoding && encoding.toLowerCase() !== "identity") {
    await response.body?.cancel();
    throw new KaggleError(
      `the server sent the zip with Content-Encoding: ${encoding}, ` +
        `which cannot be verified or resumed.`,
    );
  }
}

/** Where a body goes and the sizes the server announced. */
interface BodyPlan {
  /** The byte of the file the body starts at: the offset (206) or 0 (200). */
  start: number;
  /** `Content-Length`: the body's size. */
  length?: number;
  /** The whole file's size, when known. */
  total?: number;
}

/**
 * What the answer allows: a 206 for the range asked (of the same file)
 * continues the partial file; a 200 starts from zero. `undefined` when a 206
 * does not match, after dropping the partial file.
 */
async function planBody(
  { options, offset, meta }: Attempt,
  response: Response,
): Promise<BodyPlan | undefined> {
  const length = parseLength(response.headers.get("content-length"));
  if (response.status !== 206) {
    if (offset > 0) {
      options.log(
        "The server sent the whole file instead of the rest " +
          "(no range support, or the file changed); starting over.",
      );
    }
    return { start: 0, length, total: length };
  }
  const range = parseContentRange(response.headers.get("content-range"));
  const expectedTotal = meta?.total;
  if (
    range?.start !== offset ||
    (expectedTotal !== undefined && range.total !== undefined &&
      range.total !== expectedTotal)
  ) {
    await response.body?.cancel();
    options.log(
      "The server answered with a different byte range or file; " +
        "starting over.",
    );
    await removeIfExists(options.partial);
    return undefined;
  }
  const total = range.total ?? expectedTotal ??
    (length === undefined ? undefined : offset + length);
  return { start: offset, length, total };
}

/** The checksums a transfer is verified against, and their running hashes. */
interface Checks {
  /** The whole file's MD5 (base64), from `x-goog-hash`, the ETag or earlier. */
  wholeMd5?: string;
  /** `Content-MD5`: this body's MD5 (base64). */
  bodyMd5?: string;
  /** Hashing the whole file (its earlier bytes included). */
  whole?: Hash;
  /** Hashing this body. */
  body?: Hash;
}

/**
 * Finds the checksums the answer offers, remembers them with the file's size
 * and ETag for a later resume, and starts hashing (the partial file's
 * earlier bytes first).
 */
async function prepareChecks(
  { options, meta, idle }: Attempt,
  response: Response,
  plan: BodyPlan,
): Promise<Checks> {
  // A 200 is a fresh start: what was remembered about the partial is stale.
  const known = plan.start > 0 ? meta : undefined;
  const etag = response.headers.get("etag") ?? known?.etag;
  const wholeMd5 = googMd5(response.headers) ?? known?.md5 ??
    etagMd5(etag ?? undefined);
  const bodyMd5 = response.headers.get("content-md5")?.trim() || undefined;
  if (plan.start === 0 || !known) {
    const remembered: PartialMeta = {
      dataset: options.dataset,
      total: plan.total,
      etag: etag ?? undefined,
      md5: wholeMd5,
    };
    await writeTextAtomic(options.metaPath, JSON.stringify(remembered));
  }
  const whole = wholeMd5 ? createHash("md5") : undefined;
  if (whole && plan.start > 0) {
    await hashFile(whole, options.partial);
    idle.arm();
  }
  const body = bodyMd5 ? createHash("md5") : undefined;
  return { wholeMd5, bodyMd5, whole, body };
}

/**
 * Writes the body into the partial file (appending after a 206), hashing it
 * and showing progress; returns the bytes received. An interruption keeps the
 * partial file for the next run to resume.
 */
async function receiveBody(
  { options, idle }: Attempt,
  response: Response,
  { plan, checks }: { plan: BodyPlan; checks: Checks },
): Promise<number> {
  const { start, total } = plan;
  const view = progressView(options, total);
  let received = 0;
  const file = await Deno.open(options.partial, {
    write: true,
    create: true,
    append: start > 0,
    truncate: start === 0,
  });
  try {
    if (!response.body) throw new KaggleError("the server sent no body");
    view.update(start, total);
    for await (const chunk of response.body) {
      idle.arm();
      await writeAll(file, chunk);
      checks.whole?.update(chunk);
      checks.body?.update(chunk);
      received += chunk.length;
      view.update(start + received, total);
    }
  } catch (error) {
    if (error instanceof KaggleError) throw error;
    if (idle.signal.aborted) throw idle.signal.reason;
    throw new KaggleError(
      `the download of ${options.dataset} was interrupted after ` +
        `${formatMB(start + received)}${
          total ? ` of ${formatMB(total)}` : ""
        } MB (${(error as Error).message}); run again to resume.`,
    );
  } finally {
    file.close();
    view.stop();
  }
  return received;
}

/**
 * Checks the byte count against what was announced, then the MD5s. A short
 * body can be resumed; a wrong size or checksum deletes the download.
 */
async function verifyTransfer(
  { options }: Attempt,
  { plan, checks, received }: {
    plan: BodyPlan;
    checks: Checks;
    received: number;
  },
): Promise<Transfer> {
  const { start, length, total } = plan;
  if (length !== undefined && received < length) {
    throw new KaggleError(
      `the download of ${options.dataset} stopped after ` +
        `${formatMB(start + received)} of ${formatMB(start + length)} MB; ` +
        `run again to resume.`,
    );
  }
  const size = start + received;
  if (
    (length !== undefined && received !== length) ||
    (total !== undefined && size !== total)
  ) {
    await discardDownload(options);
    throw new KaggleError(
      `the server sent ${size} bytes but announced ${
        total ?? start + (length ?? 0)
      }; deleted the download, run again.`,
    );
  }
  if (checks.body && checks.bodyMd5 !== checks.body.digest("base64")) {
    await discardDownload(options);
    throw new KaggleError(
      `Content-MD5 mismatch on ${options.dataset}: the server said ` +
        `${checks.bodyMd5}; deleted the download, run again.`,
    );
  }
  if (checks.whole && checks.wholeMd5) {
    await checkMd5(checks.whole.digest("base64"), checks.wholeMd5, options);
  }
  options.log(
    `Downloaded ${formatMB(size)} MB` +
      (start > 0 ? ` (${formatMB(received)} MB in this run)` : "") +
      (checks.wholeMd5 ? ", MD5 verified." : "."),
  );
  return { bytes: received, resumed: start > 0 };
}

/** Deletes the partial file and what was remembered about it. */
async function discardDownload(options: TransferOptions): Promise<void> {
  await removeIfExists(options.partial);
  await removeIfExists(options.metaPath);
}

/** Throws, after deleting the download, when the whole file's MD5 is wrong. */
async function checkMd5(
  actual: string,
  expected: string,
  options: TransferOptions,
): Promise<void> {
  if (actual === expected) return;
  await discardDownload(options);
  throw new KaggleError(
    `MD5 mismatch on ${options.dataset}: expected ${expected}, got ` +
      `${actual}; deleted the download, run again.`,
  );
}

async function verifyWholeMd5(
  path: string,
  expected: string,
  options: TransferOptions,
): Promise<void> {
  const hash = createHash("md5");
  await hashFile(hash, path);
  await checkMd5(hash.digest("base64"), expected, options);
}

// ---------------------------------------------------------------------------
// Unpacking: checksum, streaming unzip with caps, layout, atomic install,
// manifest.

interface UnpackOptions {
  /** The file to unpack (the `.partial` right after a download). */
  source: string;
  /** The zip's final name (where `source` is once `beforeInstall` ran). */
  zip: string;
  dest: string;
  downloadDir: string;
  manifestPath: string;
  dataset: string;
  /** The SHA-256s `source` must have; checked before anything is unpacked. */
  expected: ExpectedSha256[];
  limits?: Partial<UnzipLimits>;
  log: (message: string) => void;
  /** Runs once the data is unpacked and checked, with the zip's SHA-256. */
  beforeInstall?: (sha256: string) => Promise<void>;
}

/** What was unpacked and installed. */
interface Unpacked {
  /** Files now under the splits. */
  files: number;
  /** The zip's SHA-256 (hex). */
  sha256: string;
}

/**
 * Verifies the checksum, unpacks into a temporary folder, checks the
 * layout, then renames the splits into place and writes the manifest. The
 * temporary folder is removed whatever happens.
 */
async function unpackAndInstall(options: UnpackOptions): Promise<Unpacked> {
  const { source, dest, downloadDir } = options;
  const sha256 = await verifySha256(source, options.expected);
  if (options.expected.length > 0) {
    options.log(`SHA-256 verified (${sha256}).`);
  }
  await removeLeftoverUnpacks(downloadDir);
  const temp = await Deno.makeTempDir({ dir: downloadDir, prefix: "unpack-" });
  try {
    await unzipFile({
      archive: source,
      into: join(temp, "zip"),
      limits: options.limits,
    });
    const root = await findSplitsRoot(source, join(temp, "zip"));
    const splits = await countSplits(source, root);
    await options.beforeInstall?.(sha256);
    await installSplits(root, dest, temp);
    const files = await writeManifest(options, splits);
    options.log(`Unpacked ${files} files into ${dest} (${summary(splits)}).`);
    return { files, sha256 };
  } finally {
    await removeIfExists(temp);
  }
}

/** Removes the temporary folders of a run killed while unpacking. */
async function removeLeftoverUnpacks(downloadDir: string): Promise<void> {
  for await (const entry of Deno.readDir(downloadDir)) {
    if (entry.isDirectory && entry.name.startsWith("unpack-")) {
      await removeIfExists(join(downloadDir, entry.name));
    }
  }
}

type SplitCounts = Record<string, Record<string, number>>;

/**
 * The per-class file counts of every split; a split without class folders
 * or a class folder without files is a layout error naming the archive and
 * the folder.
 */
async function countSplits(zip: string, root: string): Promise<SplitCounts> {
  const splits: SplitCounts = {};
  for (const split of DATASET_SPLITS) {
    splits[split] = await countClassFiles(join(root, split));
    const classes = Object.entries(splits[split]);
    if (classes.length === 0) {
      throw new KaggleError(
        `${zip} does not have the expected layout: ${split}/ holds no class ` +
          `folders (expected ${split}/<class>/<image>)`,
      );
    }
    for (const [name, count] of classes) {
      if (count > 0) continue;
      throw new KaggleError(
        `${zip} does not have the expected layout: the class folder ` +
          `${JSON.stringify(`${split}/${name}`)} holds no files`,
      );
    }
  }
  return splits;
}

/** Writes the manifest of the installed data; returns its file count. */
async function writeManifest(
  options: UnpackOptions,
  splits: SplitCounts,
): Promise<number> {
  let files = 0;
  for (const split of DATASET_SPLITS) {
    for (const count of Object.values(splits[split])) files += count;
  }
  const manifest: Manifest = {
    dataset: options.dataset,
    zipBytes: (await fileSize(options.zip)) ?? 0,
    files,
    splits,
  };
  await writeTextAtomic(
    options.manifestPath,
    JSON.stringify(manifest, null, 2) + "\n",
  );
  return files;
}

/** `Training: glioma 3, notumor 2; Testing: …`. */
function summary(splits: SplitCounts): string {
  return DATASET_SPLITS.map((split) =>
    `${split}: ${
      Object.entries(splits[split]).map(([c, n]) => `${c} ${n}`).join(", ")
    }`
  ).join("; ");
}

async function listDirs(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    if (entry.isDirectory) names.push(entry.name);
  }
  return names.sort();
}

/** The folder holding `Training/` and `Testing/`: the top, or inside one wrapper. */
async function findSplitsRoot(zip: string, top: string): Promise<string> {
  let current = top;
  for (let depth = 0; depth < 3; depth++) {
    const dirs = await listDirs(current);
    if (DATASET_SPLITS.every((split) => dirs.includes(split))) return current;
    const candidates = dirs.filter((d) =>
      d !== "__MACOSX" && !d.startsWith(".")
    );
    if (candidates.length !== 1) break;
    current = join(current, candidates[0]);
  }
  const found = (await listDirs(top)).join(", ") || "nothing";
  // The archive itself is fine (not deleted), it is just not this dataset.
  throw new KaggleError(
    `${zip} does not have the expected layout: no ${
      DATASET_SPLITS.join("/ and ")
    }/ folders (top level holds: ${found})`,
  );
}

async function countClassFiles(
  splitDir: string,
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const dir of await listDirs(splitDir)) {
    let count = 0;
    for await (const entry of Deno.readDir(join(splitDir, dir))) {
      if (entry.isFile) count++;
    }
    counts[dir] = count;
  }
  return counts;
}

/**
 * Renames each split into `dest`, moving an existing copy aside first (into
 * `temp`, removed afterwards); on failure every rename is undone.
 */
async function installSplits(
  root: string,
  dest: string,
  temp: string,
): Promise<void> {
  const done: Array<{ split: string; aside?: string }> = [];
  try {
    for (const split of DATASET_SPLITS) {
      const target = join(dest, split);
      let aside: string | undefined;
      if (await exists(target)) {
        aside = join(temp, `.previous-${split}`);
        await Deno.rename(target, aside);
      }
      done.push({ split, aside });
      await Deno.rename(join(root, split), target);
    }
  } catch (error) {
    for (const { split, aside } of done.reverse()) {
      const target = join(dest, split);
      if (!(await exists(join(root, split))) && await exists(target)) {
        await Deno.rename(target, join(root, split)).catch(() => {});
      }
      if (aside) await Deno.rename(aside, target).catch(() => {});
    }
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Whether `dest` already holds the complete dataset: every class folder the
 * manifest lists has its file count; without a manifest, both splits exist
 * with at least one non-empty class folder (a copy unpacked by hand).
 */
async function completeData(
  dest: string,
  manifestPath: string,
): Promise<{ files: number; verified: boolean } | undefined> {
  let manifest: Manifest | undefined;
  try {
    manifest = JSON.parse(await Deno.readTextFile(manifestPath)) as Manifest;
  } catch {
    manifest = undefined;
  }
  try {
    let files = 0;
    if (manifest?.splits) {
      for (const split of DATASET_SPLITS) {
        const expected = manifest.splits[split];
        if (!expected) return undefined;
        const actual = await countClassFiles(join(dest, split));
        for (const [cls, count] of Object.entries(expected)) {
          if (actual[cls] !== count) return undefined;
          files += count;
        }
      }
      return { files, verified: true };
    }
    for (const split of DATASET_SPLITS) {
      const counts = Object.values(await countClassFiles(join(dest, split)));
      if (!counts.some((n) => n > 0)) return undefined;
      for (const n of counts) files += n;
    }
    return { files, verified: false };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

// ---------------------------------------------------------------------------
// CLI

/**
 * The command line of `deno task data:download`, declared once: the usage is
 * generated from it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { usage } from "../core/cli.ts";
 * import { KAGGLE_CLI } from "./kaggle.ts";
 * const text = usage(KAGGLE_CLI);
 * assert.match(text, /^usage: deno task data:download -- \[options\]/);
 * assert.match(text, /--dest DIR +target folder/);
 * assert.match(text, /--force +download and unpack again/);
 * assert.match(text, /--zip FILE +unpack this zip/);
 * assert.match(text, /--max-unpacked-bytes N +.*\(default 4294967296, 4 GiB\)/);
 * ```
 */
export const KAGGLE_CLI = {
  command: "deno task data:download",
  summary: `Downloads the Kaggle dataset ${DEFAULT_DATASET}
(or --dataset) through Kaggle's API, verifies it and unpacks it so that
DIR/Training and DIR/Testing exist. With --zip, unpacks a zip you already
have instead (no credentials, no network), with the same checks.`,
  flags: {
    dest: {
      type: "string",
      value: "DIR",
      defaultText: "BRAIN_MRI_DATA, else <project>/data",
      help: "target folder",
    },
    dataset: {
      type: "string",
      value: "OWNER/NAME",
      help: "another Kaggle dataset with the same layout",
    },
    force: {
      type: "boolean",
      help: "download and unpack again even if the data is complete",
    },
    zip: {
      type: "string",
      value: "FILE",
      help: "unpack this zip instead of downloading (checked against\n" +
        "FILE.sha256 when that exists)",
    },
    sha256: {
      type: "string",
      value: "HEX",
      help: "the zip's SHA-256, checked before unpacking",
    },
    "max-unpacked-bytes": {
      type: "integer",
      default: DEFAULTS.maxUnpackedBytes,
      defaultText: `${DEFAULTS.maxUnpackedBytes}, ${
        DEFAULTS.maxUnpackedBytes / 1024 ** 3
      } GiB`,
      help: "refuse a zip that unpacks to more bytes than this in all",
    },
  },
  footer:
    `Credentials: KAGGLE_USERNAME + KAGGLE_KEY, or kaggle.json in KAGGLE_CONFIG_DIR
or ~/.kaggle/. KAGGLE_API_BASE overrides ${DEFAULT_KAGGLE_API_BASE}.
A zip is refused, naming the entry, for unsafe paths or links, a file where a
folder should be, too many entries, an entry that expands like a zip bomb, or
more than --max-unpacked-bytes in all; nothing half-unpacked is left behind.`,
} as const;

type KaggleCliValues = ParsedCli<typeof KAGGLE_CLI>["values"];

/** The flags' combinations and values that cannot work, as a {@linkcode UsageError}. */
function checkFlags(values: KaggleCliValues): void {
  if (values.sha256 !== undefined) {
    const hex = parseSha256(values.sha256);
    if (hex === undefined || hex.length !== values.sha256.trim().length) {
      throw new UsageError(
        `--sha256 must be 64 hex digits (got "${values.sha256}")`,
      );
    }
  }
  if (values["max-unpacked-bytes"] <= 0) {
    throw new UsageError(
      `--max-unpacked-bytes must be above 0 (got ${
        values["max-unpacked-bytes"]
      })`,
    );
  }
  if (values.zip !== undefined && values.force) {
    throw new UsageError(
      "--force only applies to downloads; --zip always unpacks",
    );
  }
}

/** `--zip FILE`: unpacks the user's zip. */
async function installFromCli(values: KaggleCliValues): Promise<void> {
  const result = await installDatasetZip({
    zip: values.zip!,
    dest: values.dest,
    dataset: values.dataset,
    sha256: values.sha256,
    limits: { maxUnpackedBytes: values["max-unpacked-bytes"] },
  });
  console.log(`Done: ${result.files} files in ${result.dest}.`);
}

/** The download, as by default. */
async function downloadFromCli(values: KaggleCliValues): Promise<void> {
  const result = await downloadKaggleDataset({
    dest: values.dest,
    dataset: values.dataset,
    force: values.force,
    sha256: values.sha256,
    limits: { maxUnpackedBytes: values["max-unpacked-bytes"] },
  });
  if (result.skipped) return;
  console.log(
    `Done: ${result.files} files in ${result.dest} ` +
      `(${formatMB(result.bytes)} MB transferred${
        result.resumed ? ", resumed" : ""
      }).`,
  );
}

/** One line on stderr, never a stack trace; a hint when a cap can be raised. */
function reportError(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const cap = error instanceof Error && error.cause instanceof UnzipError
    ? error.cause.cap
    : undefined;
  const hint = cap === "maxUnpackedBytes"
    ? " (if the archive is genuine, raise --max-unpacked-bytes)"
    : "";
  console.error(`error: ${message}${hint}`);
}

async function main({ values }: ParsedCli<typeof KAGGLE_CLI>): Promise<number> {
  checkFlags(values);
  try {
    if (values.zip !== undefined) await installFromCli(values);
    else await downloadFromCli(values);
    return 0;
  } catch (error) {
    reportError(error);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await runCli(KAGGLE_CLI, main));
