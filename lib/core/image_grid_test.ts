import assert from "node:assert/strict";
import sharp from "sharp";
import { JUPYTER_DISPLAY } from "./display.ts";
import { encodePng, imageGrid } from "./image_grid.ts";

Deno.test("image_grid: encodePng round-trips the pixels", async () => {
  const pixels = Uint8Array.from({ length: 8 * 4 }, (_, i) => i * 7);
  const png = await encodePng({ pixels, width: 8, height: 4 });
  const meta = await sharp(png).metadata();
  assert.equal(meta.channels, 1, "grayscale stays a 1-band PNG");
  const { data, info } = await sharp(png).toColourspace("b-w").raw()
    .toBuffer({ resolveWithObject: true });
  assert.equal(info.width, 8);
  assert.equal(info.height, 4);
  assert.equal(info.channels, 1);
  assert.deepEqual(new Uint8Array(data), pixels);
});

Deno.test("image_grid: a wrong pixel count is a clear error", async () => {
  await assert.rejects(
    encodePng({ pixels: new Uint8Array(10), width: 4, height: 4 }),
    /10 bytes do not make a 4×4×1 image/,
  );
});

Deno.test("image_grid: the grid shows every image with its caption", async () => {
  const images = [0, 255].map((v, i) => ({
    pixels: new Uint8Array(16 * 16).fill(v),
    width: 16,
    height: 16,
    caption: `img <${i}>`,
  }));
  const bundle = (await imageGrid({ images, columns: 2, title: "T" }))
    [JUPYTER_DISPLAY]();
  const html = bundle["text/html"] as string;
  assert.equal(html.match(/<img /g)?.length, 2);
  assert.match(html, /grid-template-columns:repeat\(2,128px\)/);
  assert.match(html, /img &lt;1&gt;/);
  assert.match(html, /src="data:image\/png;base64,iVBORw0KGgo/);
  assert.equal(bundle["text/plain"], "T\n[1] 16×16 img <0>\n[2] 16×16 img <1>");
});
