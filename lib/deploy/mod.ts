/**
 * Stage 5 of the pipeline: using a model.
 *
 * `predict` and `serve` (with a worker pool), the model card, and choosing a
 * model's test-time augmentation and operating point on its validation split.
 * Imports the earlier stages.
 *
 * | module | what |
 * | --- | --- |
 * | `admission.ts` | Admission control for the service's heavy work: at most `active` jobs run at once, at most… |
 * | `conn_guard.ts` | A connection guard in front of an HTTP server: the public TCP listener, which pipes each… |
 * | `ensemble.ts` | `deno task ensemble`: several models trained on the same split saved as one that averages their class probabilities |
 * | `export.ts` | `deno task export`: a saved model written as a standard ONNX file, optionally checked against tfjs |
 * | `http_framing.ts` | Following HTTP/1.1 message framing on a byte stream, as much as a connection guard needs… |
 * | `inference_pool.ts` | Classifying one encoded image at a time, in this thread or on a pool of Web Workers that each… |
 * | `model_card.ts` | Model cards: a `README.md` next to a shipped model saying what it was trained on, what it is for… |
 * | `operating_point.ts` | Choosing an operating point on a validation split: the operating-point rule |
 * | `predict.ts` | Predicting the class of scans with a saved model, from a terminal or a notebook |
 * | `request_log.ts` | The service's request log: one JSON object per request, on one line, with every control… |
 * | `select_threshold.ts` | Chooses a model's operating point (lib/model/decision.ts) on its validation split — never on the… |
 * | `select_tta.ts` | Chooses a model's test-time augmentation on its validation split — never on the test split — and… |
 * | `serve.ts` | Serving a saved model over HTTP (`Deno.serve`, behind a connection guard) |
 *
 * @module
 */
export * from "./admission.ts";
export * from "./conn_guard.ts";
export * from "./ensemble.ts";
export * from "./export.ts";
export * from "./http_framing.ts";
export * from "./inference_pool.ts";
export * from "./model_card.ts";
export * from "./operating_point.ts";
export * from "./predict.ts";
export * from "./request_log.ts";
export * from "./select_threshold.ts";
export * from "./select_tta.ts";
export * from "./serve.ts";
