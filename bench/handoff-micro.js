'use strict';
// Hand-off microbenchmark, no KVM: a worker ("vCPU") asks the main thread
// ("device thread") to serve a request and waits for the answer, 20000 times,
// over tsvmm's own ExitChannel/Doorbell (dist/shared/exit-channel) and over
// postMessage. Isolates the thread hand-off from the exit itself.
//
//   node bench/handoff-micro.js [--iterations N]
//
// Modes:
//   ring-spin   the worker spins on `completed`, the main thread polls (both busy)
//   ring-park   the worker parks in Atomics.wait, the main thread polls and notifies
//   post-message  request by postMessage, answer in the shared word (tsvmm's post-message mode)
// Prints the median and p90 round trip in microseconds, and the main thread's
// time spent inside complete() (Atomics.store + Atomics.notify when parked).

const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');

const EXIT_CHANNEL = path.join(__dirname, '..', 'dist', 'shared', 'exit-channel');

function stats(samples) {
  const v = Float64Array.from(samples).sort();
  return { median: v[v.length >> 1], p90: v[Math.floor(v.length * 0.9)], min: v[0] };
}

if (!isMainThread) {
  const { ExitChannel, Doorbell } = require(EXIT_CHANNEL);
  const { mode, iterations, channelBuffer, doorbellBuffer } = workerData;
  const channel = new ExitChannel(channelBuffer, new Doorbell(doorbellBuffer));
  const counters = { spinHits: 0, parks: 0 };
  const samples = [];
  const spinLimit = mode === 'ring-spin' ? 1e9 : 0;
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const sequence = channel.handOff();
    if (mode === 'post-message') parentPort.postMessage(sequence);
    channel.waitForCompletion(sequence, spinLimit, counters);
    samples.push((performance.now() - t0) * 1000);
  }
  parentPort.postMessage({ done: true, samples, counters });
} else {
  const { ExitChannel, Doorbell } = require(EXIT_CHANNEL);

  async function runMode(mode, iterations) {
    const doorbell = new Doorbell();
    const channel = new ExitChannel(undefined, doorbell);
    const worker = new Worker(__filename, { workerData: { mode, iterations, channelBuffer: channel.buffer, doorbellBuffer: doorbell.buffer } });
    let completeMicros = 0;
    let served = 0;
    const serve = (sequence) => {
      const t = performance.now();
      channel.complete(sequence);
      completeMicros += (performance.now() - t) * 1000;
      served++;
    };
    let polling = mode !== 'post-message';
    const result = new Promise((resolve) => {
      worker.on('message', (msg) => {
        if (typeof msg === 'number') {
          if (channel.pendingSequence() === msg) serve(msg);
        } else if (msg.done) {
          polling = false;
          resolve(msg);
        }
      });
    });
    // Poll in slices so the 'message' events still get through.
    const poll = () => {
      if (!polling) return;
      const end = performance.now() + 5;
      while (performance.now() < end) {
        const sequence = channel.pendingSequence();
        if (sequence !== undefined) serve(sequence);
      }
      setImmediate(poll);
    };
    if (polling) setImmediate(poll);
    const msg = await result;
    await worker.terminate();
    return { mode, ...stats(msg.samples), completeMicrosPerCall: completeMicros / Math.max(1, served), counters: msg.counters };
  }

  (async () => {
    const args = process.argv.slice(2);
    const at = args.indexOf('--iterations');
    const iterations = at >= 0 ? Number(args[at + 1]) : 20000;
    const results = [];
    for (const mode of ['ring-spin', 'ring-park', 'post-message']) results.push(await runMode(mode, iterations));
    for (const r of results) {
      console.log(`${r.mode.padEnd(13)} round trip median=${r.median.toFixed(2)} us p90=${r.p90.toFixed(2)} us min=${r.min.toFixed(2)} us; complete() ${r.completeMicrosPerCall.toFixed(2)} us/call`);
    }
    const spin = results[0].median;
    const msg = results[2].median;
    console.log(`post-message / ring-spin = ${(msg / spin).toFixed(1)}x`);
    process.exit(0);
  })();
}
