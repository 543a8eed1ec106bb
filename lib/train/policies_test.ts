// The policies on their own: plain numbers in, decisions out, no TensorFlow.
import assert from "node:assert/strict";
import {
  afterEpoch,
  cosineLearningRate,
  earlyStopping,
  isImprovement,
  monitoredLoss,
  reduceOnPlateau,
  scheduledLearningRate,
  timeBudgetSpent,
} from "./policies.ts";
import type { PatienceState, StopReason } from "./state.ts";

const FRESH: PatienceState = { best: null, wait: 0 };

/** Early stopping over a sequence of monitored losses: the stop flags. */
function stopsOver(
  losses: number[],
  options: { patience: number; minDelta: number },
): boolean[] {
  let state = FRESH;
  return losses.map((loss) => {
    const next = earlyStopping(state, loss, options);
    state = next.state;
    return next.stop;
  });
}

/** Reduce-on-plateau over a sequence of losses: the rate after each epoch. */
function ratesOver(
  losses: number[],
  learningRate: number,
  options: {
    patience: number;
    factor: number;
    minLr: number;
    minDelta: number;
  },
): number[] {
  let state = FRESH;
  let lr = learningRate;
  return losses.map((loss) => {
    const next = reduceOnPlateau(state, loss, lr, options);
    state = next.state;
    lr = next.learningRate;
    return lr;
  });
}

Deno.test("monitoredLoss watches validation, else training; any loss beats none", () => {
  assert.equal(monitoredLoss({ loss: 0.3, val_loss: 0.5 }), 0.5);
  assert.equal(monitoredLoss({ loss: 0.3, val_loss: null }), 0.3);
  assert.equal(isImprovement({ loss: null }, Infinity), true);
  assert.equal(isImprovement({ loss: 0.5 }, 0.5), false);
  assert.equal(isImprovement({ loss: 0.5 }, 0.4999), true);
});

Deno.test("earlyStopping: stops after `patience` epochs without an improvement by more than minDelta", () => {
  assert.deepEqual(
    stopsOver([1, 0.9, 0.95, 0.92, 0.91], { patience: 3, minDelta: 0 }),
    [false, false, false, false, true],
  );
  // An improvement resets the wait.
  assert.deepEqual(
    stopsOver([1, 1.1, 0.5, 0.6, 0.7], { patience: 2, minDelta: 0 }),
    [false, false, false, false, true],
  );
  // Better, but not by more than minDelta, is no improvement.
  assert.deepEqual(
    stopsOver([1, 0.995, 0.99], { patience: 2, minDelta: 0.01 }),
    [false, false, true],
  );
  assert.deepEqual(
    earlyStopping({ best: 1, wait: 2 }, 0.5, { patience: 3, minDelta: 0 }),
    { state: { best: 0.5, wait: 0 }, stop: false },
  );
});

Deno.test("reduceOnPlateau: multiplies the rate by factor after `patience` flat epochs, not below minLr", () => {
  // As in trainModel's test: lr 1e-8, every epoch after the first is flat.
  const lr = 1e-8;
  assert.deepEqual(
    ratesOver([2, 2, 2, 2], lr, {
      patience: 1,
      factor: 0.5,
      minLr: 1e-12,
      minDelta: 0.01,
    }),
    [lr, lr / 2, lr / 4, lr / 8],
  );
  assert.deepEqual(
    ratesOver([1, 1, 1, 1, 1], 1e-3, {
      patience: 2,
      factor: 0.1,
      minLr: 5e-5,
      minDelta: 0,
    }),
    [1e-3, 1e-3, 1e-3 * 0.1, 1e-3 * 0.1, 5e-5],
  );
  // At the floor the wait still starts over.
  assert.deepEqual(
    reduceOnPlateau({ best: 1, wait: 0 }, 1, 1e-5, {
      patience: 1,
      factor: 0.5,
      minLr: 1e-5,
      minDelta: 0,
    }),
    { state: { best: 1, wait: 0 }, learningRate: 1e-5 },
  );
});

Deno.test("cosine decay: from the rate to minLr over epochs or over the time budget", () => {
  const lr = { learningRate: 1e-3, minLr: 1e-5 };
  assert.equal(cosineLearningRate({ ...lr, epoch: 0, epochs: 4 }), 1e-3);
  assert.ok(
    Math.abs(
      cosineLearningRate({ ...lr, epoch: 2, epochs: 4 }) -
        (1e-5 + (1e-3 - 1e-5) / 2),
    ) < 1e-15,
  );
  assert.equal(cosineLearningRate({ ...lr, epoch: 4, epochs: 4 }), 1e-5);
  assert.equal(cosineLearningRate({ ...lr, epoch: 9, epochs: 4 }), 1e-5);
  const config = { learningRate: 1e-3, epochs: 4, maxSeconds: 600 };
  const byEpochs = {
    ...config,
    cosineDecay: { minLr: 1e-5, over: "epochs" as const },
  };
  const byTime = {
    ...config,
    cosineDecay: { minLr: 1e-5, over: "time" as const },
  };
  assert.equal(
    scheduledLearningRate(byEpochs, { epoch: 2, seconds: 0 }),
    cosineLearningRate({ ...lr, epoch: 2, epochs: 4 }),
  );
  assert.equal(
    scheduledLearningRate(byTime, { epoch: 2, seconds: 150 }),
    cosineLearningRate({ ...lr, epoch: 150, epochs: 600 }),
  );
  assert.equal(
    scheduledLearningRate({ ...config, cosineDecay: false }, {
      epoch: 2,
      seconds: 150,
    }),
    undefined,
  );
});

Deno.test("timeBudgetSpent: stops when one more epoch as long as the last would pass the budget", () => {
  assert.equal(
    timeBudgetSpent({ seconds: 60, epochSeconds: 20, maxSeconds: 100 }),
    false, // 60 + 2·20 = 100 is not past 100
  );
  assert.equal(
    timeBudgetSpent({ seconds: 60.5, epochSeconds: 20, maxSeconds: 100 }),
    true,
  );
  assert.equal(
    timeBudgetSpent({ seconds: 1e9, epochSeconds: 20, maxSeconds: null }),
    false,
  );
});

const STATE = {
  epochsCompleted: 3,
  learningRate: 1e-3,
  seconds: 10,
  earlyStopping: { best: 0.5, wait: 0 },
  plateau: { best: 0.5, wait: 0 },
};
const CONFIG: Parameters<typeof afterEpoch>[0] = {
  epochs: 10,
  maxSeconds: null,
  earlyStopping: { patience: 1, minDelta: 0 },
  reduceLrOnPlateau: { patience: 3, factor: 0.5, minLr: 0, minDelta: 0 },
};

Deno.test("afterEpoch: early stopping before the last epoch before the time budget", () => {
  const reason = (
    config: Partial<typeof CONFIG>,
    state: Partial<typeof STATE>,
    monitored: number,
  ): StopReason | undefined =>
    afterEpoch({ ...CONFIG, ...config }, { ...STATE, ...state }, {
      monitored,
      epochSeconds: 5,
    }).stopReason;
  const spent = { maxSeconds: 15 };
  const last = { epochsCompleted: 10 };
  assert.equal(reason({}, {}, 0.4), undefined);
  assert.equal(reason(spent, last, 0.6), "early-stopping");
  assert.equal(reason(spent, last, 0.4), "completed");
  assert.equal(reason(spent, {}, 0.4), "time-budget");
  assert.equal(
    reason({ ...spent, earlyStopping: false }, {}, 0.6),
    "time-budget",
  );
});

Deno.test("afterEpoch: policies that are off leave their counters and the rate alone", () => {
  const decision = afterEpoch(
    { ...CONFIG, earlyStopping: false, reduceLrOnPlateau: false },
    STATE,
    { monitored: 9, epochSeconds: 1 },
  );
  assert.equal(decision.earlyStopping, STATE.earlyStopping);
  assert.equal(decision.plateau, STATE.plateau);
  assert.equal(decision.learningRate, STATE.learningRate);
  assert.equal(decision.stopReason, undefined);
  // With both on, one flat epoch counts for both.
  assert.deepEqual(
    afterEpoch(CONFIG, STATE, { monitored: 9, epochSeconds: 1 }),
    {
      earlyStopping: { best: 0.5, wait: 1 },
      plateau: { best: 0.5, wait: 1 },
      learningRate: 1e-3,
      stopReason: "early-stopping",
    },
  );
});
