'use strict';
// Hand-off microbenchmark, no KVM: a worker ("vCPU") asks the main thread
// ("device thread") to serve a request and waits for the answer, 20000 times,
// over tsvmm's own ExitChannel/Doorbell (dist/shared/exit-channel) and over
// postMessage. Isolates the thread hand-off from the exit itself.
//
//   node bench/handoff-micro.js [--iterations N] [--help]
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
const KVM_RUN_VIEW = path.join(__dirname, '..', 'dist', 'shared', 'kvm-run');

function stats(samples) {
  const v = Float64Array.from(samples).sort();
  return { median: v[v.length >> 1], p90: v[Math.floor(v.length * 0.9)], min: v[0] };
}

if (!isMainThread) {
  const { ExitChannel, Doorbell } = require(EXIT_CHANNEL);
  const { ACCESS_KIND, emptyAccess } = require(KVM_RUN_VIEW);
  const { mode, iterations, channelBuffer, doorbellBuffer } = workerData;
  // A one-byte port read of COM1's scratch register, as the exit path hands it over.
  const access = { ...emptyAccess(), kind: ACCESS_KIND.ioRead, address: 0x3ff, size: 1, count: 1 };
  const channel = new ExitChannel(channelBuffer, new Doorbell(doorbellBuffer));
  const counters = { spinHits: 0, parks: 0 };
  const samples = [];
  const spinLimit = mode === 'ring-spin' ? 1e9 : 0;
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const sequence = channel.handOff(access);
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

  /** Strict options: --iterations N (default 20000) and --help; anything else is one line and exit 2. */
  function parseIterations(argv) {
    let iterations = 20000;
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (arg === '--help' || arg === '-h') {
        process.stdout.write('usage: node bench/handoff-micro.js [--iterations N] [--help]\n\n'
          + 'The vCPU-to-device-thread hand-off alone, without KVM: ring-spin, ring-park and post-message round trips.\n\n'
          + '  --iterations N  round trips per mode (default 20000)\n  --help          this text\n');
        process.exit(0);
      }
      const value = arg === '--iterations' ? argv[++i] : arg.startsWith('--iterations=') ? arg.slice('--iterations='.length) : undefined;
      if (value === undefined) {
        process.stderr.write(`handoff-micro: ${arg === '--iterations' ? '--iterations needs a value' : `unknown option ${JSON.stringify(arg)}`} (try --help)\n`);
        process.exit(2);
      }
      if (!/^[1-9][0-9]*$/.test(value) || Number(value) > 10_000_000) {
        process.stderr.write(`handoff-micro: --iterations wants a whole number from 1 to 10000000, not ${JSON.stringify(value)}\n`);
        process.exit(2);
      }
      iterations = Number(value);
    }
    return iterations;
  }

  (async () => {
    const iterations = parseIterations(process.argv.slice(2));
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
