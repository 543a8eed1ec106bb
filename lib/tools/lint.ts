/**
 * The project's own `deno lint` rules, loaded through `lint.plugins` in
 * `deno.json`.
 *
 * - `brain/function-length`: a function may span at most
 *   {@linkcode MAX_FUNCTION_LINES} lines, so that it reads on one screen. A
 *   longer procedure is split into named stages; where length really is the
 *   clearer form (a table of cases, say), the reason is written beside it:
 *   `// deno-lint-ignore brain/function-length -- <why>`.
 *
 * @module
 */

/** The most lines a function may span, its signature and braces included. */
export const MAX_FUNCTION_LINES = 80;

/** Counts the lines a node spans in its file. */
function linesSpanned(text: string, range: [number, number]): number {
  let lines = 1;
  for (let i = range[0]; i < range[1]; i++) {
    if (text.charCodeAt(i) === 10) lines++;
  }
  return lines;
}

const functionLength: Deno.lint.Rule = {
  create(context) {
    const check = (
      node:
        | Deno.lint.FunctionDeclaration
        | Deno.lint.FunctionExpression
        | Deno.lint.ArrowFunctionExpression,
    ) => {
      const lines = linesSpanned(context.sourceCode.text, node.range);
      if (lines > MAX_FUNCTION_LINES) {
        context.report({
          node,
          message: `this function spans ${lines} lines ` +
            `(at most ${MAX_FUNCTION_LINES})`,
          hint: "Split it into named stages, or write the reason beside it: " +
            "// deno-lint-ignore brain/function-length -- <why>",
        });
      }
    };
    return {
      FunctionDeclaration: check,
      FunctionExpression: check,
      ArrowFunctionExpression: check,
    };
  },
};

/** The plugin `deno lint` loads. */
const plugin: Deno.lint.Plugin = {
  name: "brain",
  rules: { "function-length": functionLength },
};

export default plugin;
