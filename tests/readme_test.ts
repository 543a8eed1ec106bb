/**
 * The documentation a user reads: README.md stays short, every relative link
 * in it and in docs/ reaches a file (and a heading, when it names one), every
 * `deno task NAME` it mentions exists, and no page speaks in the team's
 * process words or names a path of the machine it was written on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** README.md's size limit: a front page, with the detail in docs/. */
const README_MAX_BYTES = 12 * 1024;

/** The picture of the report that README.md shows. */
const REPORT_PICTURE = "docs/report.png";
const REPORT_PICTURE_MAX_BYTES = 300 * 1024;

/** Issue and stop numbers, rule labels: words for the team, not the user. */
const JARGON =
  /issue ?#?[0-9]|stops? [0-9]|rule R[0-9]|\bR[1-9] (rule|ranking)/i;

/** An absolute path of the machine the project was developed on. */
const MACHINE_PATH = /\/work\//;

/** Markdown files under `dir` (relative to the root), recursively, sorted. */
function markdownUnder(dir: string): string[] {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(dir, f))
    .sort();
}

/** The models committed with the project: the `!models/NAME/` lines of .gitignore. */
function shippedModels(): string[] {
  const gitignore = Deno.readTextFileSync(join(ROOT, ".gitignore"));
  return [...gitignore.matchAll(/^!models\/([^/\s]+)\/$/gm)].map((m) => m[1]);
}

/** The pages a user reads, relative to the root. */
function userPages(): string[] {
  return [
    "README.md",
    ...markdownUnder("docs"),
    "models/README.md",
    ...shippedModels().map((m) => `models/${m}/README.md`),
    "data/README.md",
  ];
}

/** Markdown without fenced code blocks and inline code spans. */
function withoutCode(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, "")
    .replace(/`[^`\n]*`/g, "");
}

/** The targets of `[text](target)` and `![alt](target)` links. */
function linkTargets(markdown: string): string[] {
  return [...withoutCode(markdown).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1]);
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped. */
function slug(heading: string): string {
  return heading.trim().toLowerCase()
    .replace(/`/g, "")
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a Markdown file's headings. */
function anchors(markdown: string): Set<string> {
  const fenceless = markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, "");
  return new Set(
    [...fenceless.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1])),
  );
}

/** What is wrong with one relative link of `page`, or null. */
function brokenLink(page: string, target: string): string | null {
  const [path, fragment] = target.split("#", 2);
  const file = path === ""
    ? join(ROOT, page)
    : resolve(ROOT, dirname(page), path);
  if (!existsSync(file)) return `${page}: ${target} does not exist`;
  if (!fragment) return null;
  if (!file.endsWith(".md")) return `${page}: ${target} is not a Markdown page`;
  return anchors(Deno.readTextFileSync(file)).has(fragment)
    ? null
    : `${page}: ${target} names no heading of ${relative(ROOT, file)}`;
}

Deno.test("readme: README.md is at most 12 KB and its picture is small", () => {
  const size = statSync(join(ROOT, "README.md")).size;
  assert.ok(size <= README_MAX_BYTES, `README.md is ${size} bytes`);
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  assert.ok(linkTargets(readme).includes(REPORT_PICTURE));
  const picture = statSync(join(ROOT, REPORT_PICTURE)).size;
  assert.ok(
    picture <= REPORT_PICTURE_MAX_BYTES,
    `${REPORT_PICTURE}: ${picture} bytes`,
  );
});

Deno.test("readme: every relative link of README.md, docs/ and the other pages reaches its file and heading", () => {
  const pages = userPages();
  assert.ok(pages.length > 3, "docs/ has pages");
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const targets = linkTargets(Deno.readTextFileSync(join(ROOT, page)))
      .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
    for (const target of targets) {
      checked++;
      const problem = brokenLink(page, target);
      if (problem) broken.push(problem);
    }
  }
  assert.ok(checked > 10, `only ${checked} links found`);
  assert.deepEqual(broken, []);
});

Deno.test("readme: the link checker sees a missing file and a missing heading", () => {
  assert.deepEqual(linkTargets("see [a](docs/x.md#y) and `[b](c.md)`"), [
    "docs/x.md#y",
  ]);
  assert.equal(slug("7. An operating point (τ)"), "7-an-operating-point-τ");
  assert.equal(slug("`deno task evaluate`"), "deno-task-evaluate");
  assert.match(
    brokenLink("README.md", "docs/nothing.md") ?? "",
    /does not exist/,
  );
  assert.match(
    brokenLink("README.md", "docs/experiments.md#no-such-heading") ?? "",
    /names no heading/,
  );
});

Deno.test("readme: every `deno task NAME` the pages mention is a task of deno.json", () => {
  const tasks = Object.keys(
    JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).tasks,
  );
  const unknown: string[] = [];
  let mentioned = 0;
  for (const page of userPages()) {
    const text = Deno.readTextFileSync(join(ROOT, page));
    for (const m of text.matchAll(/\bdeno(?:@[\d.]+)?\s+task\s+([\w:-]+)/g)) {
      mentioned++;
      if (!tasks.includes(m[1])) unknown.push(`${page}: deno task ${m[1]}`);
    }
  }
  assert.ok(mentioned > 20, `only ${mentioned} mentions found`);
  assert.deepEqual(unknown, []);
});

Deno.test("readme: no issue or stop numbers, rule labels or machine paths in what users read", () => {
  // The samples are assembled, so that this file holds no such words itself.
  const sample = (...words: string[]) => words.join(" ");
  assert.ok(JARGON.test(sample("as", "issue", "7", "asks")));
  assert.ok(JARGON.test(sample("Stop", "13", "made")));
  assert.ok(JARGON.test(sample("by", "rule", "R3")));
  assert.ok(JARGON.test(sample("the", "R2", "ranking")));
  assert.ok(!JARGON.test("the run-ranking rule, early stop after 8 epochs"));
  const shipped = shippedModels();
  assert.ok(shipped.includes("resnet-128-e13"), "the default model is shipped");
  const files = [
    ...userPages(),
    ...shipped.map((m) => `models/${m}/manifest.json`),
  ];
  const found: string[] = [];
  for (const file of files) {
    const lines = Deno.readTextFileSync(join(ROOT, file)).split("\n");
    lines.forEach((line, i) => {
      if (JARGON.test(line) || MACHINE_PATH.test(line)) {
        found.push(`${file}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(found, []);
});
