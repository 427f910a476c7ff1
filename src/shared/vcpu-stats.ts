// Per-vCPU counters kept in a SharedArrayBuffer: the vCPU worker increments
// them on its own thread and anyone may read them at any time without asking
// the worker (which is usually blocked in KVM_RUN).

const VCPU_STAT_NAMES = [
  'kvmRuns', // KVM_RUN calls that returned
  'ioExits', // KVM_EXIT_IO
  'mmioExits', // KVM_EXIT_MMIO
  'forwarded', // accesses handed to the device thread
  'unclaimed', // accesses answered on the vCPU thread because no device claims them
  'spinHits', // hand-offs answered while the vCPU was still spinning
  'parks', // hand-offs for which the vCPU had to sleep
  'interrupted', // KVM_RUN returned EINTR/EAGAIN
  'otherExits', // every other exit reason
  'firstRunNs', // process.hrtime of the first KVM_RUN (the guest's first instruction), 0 before
] as const;
export type VcpuStatName = (typeof VCPU_STAT_NAMES)[number];
export type VcpuStatValues = Record<VcpuStatName, number>;

/**
 * After the named counters: a log2 histogram of how long a vCPU waited for
 * the device thread's answer to a hand-off, one row for waits answered while
 * it spun and one for waits it parked for. Bucket 0 counts waits under 1 us,
 * bucket k (1..14) waits of 2^(k-1) to 2^k us, the last bucket everything
 * longer. Reading a clock costs ~60 ns here, so only one hand-off in
 * HANDOFF_SAMPLE_EVERY is timed: about 0.1% of a forwarded exit.
 */
export const HANDOFF_BUCKETS = 16;
const HANDOFF_SAMPLE_EVERY = 16;
const SPIN_ROW = VCPU_STAT_NAMES.length;
const PARK_ROW = SPIN_ROW + HANDOFF_BUCKETS;

export const VCPU_STATS_BYTES = (VCPU_STAT_NAMES.length + 2 * HANDOFF_BUCKETS) * 8;

/** Where the histogram is, for a writer outside JavaScript (the native exit loop): Float64 slots. */
export const HANDOFF_HISTOGRAM_LAYOUT = {
  spinRow: SPIN_ROW,
  parkRow: PARK_ROW,
  buckets: HANDOFF_BUCKETS,
  sampleEvery: HANDOFF_SAMPLE_EVERY,
} as const;

/** True for the one hand-off in HANDOFF_SAMPLE_EVERY whose wait is timed (`forwarded`: the vCPU's count so far). */
export function timesHandOffWait(forwarded: number): boolean {
  return forwarded % HANDOFF_SAMPLE_EVERY === 0;
}

/** Counts one timed hand-off wait of `micros` microseconds into `stats` (the vCPU's own Float64Array view). */
export function recordHandOffWait(stats: Float64Array, parked: boolean, micros: number): void {
  const bucket = Math.min(HANDOFF_BUCKETS - 1, 32 - Math.clz32(micros));
  stats[(parked ? PARK_ROW : SPIN_ROW) + bucket]++;
}

export interface HandOffHistogram {
  /** Waits answered while spinning, by bucket. */
  spin: number[];
  /** Waits that parked, by bucket. */
  park: number[];
}

export function readHandOffHistogram(buffer: SharedArrayBuffer): HandOffHistogram {
  const values = new Float64Array(buffer);
  return {
    spin: Array.from(values.subarray(SPIN_ROW, SPIN_ROW + HANDOFF_BUCKETS)),
    park: Array.from(values.subarray(PARK_ROW, PARK_ROW + HANDOFF_BUCKETS)),
  };
}

/** A bucket's range for people: "<1", "1-2", ..., ">=16384" (microseconds). */
function bucketLabel(bucket: number): string {
  if (bucket === 0) return '<1';
  if (bucket === HANDOFF_BUCKETS - 1) return `>=${2 ** (bucket - 1)}`;
  return `${2 ** (bucket - 1)}-${2 ** bucket}`;
}

/** --stats=json's form: the bucket bounds spelled out, so the counts mean something without this file. */
export function handOffHistogramJson(histogram: HandOffHistogram): {
  sampledOneIn: number; bucketsBelowUs: (number | null)[]; spun: number[]; parked: number[];
} {
  return {
    sampledOneIn: HANDOFF_SAMPLE_EVERY,
    // Bucket k holds waits below 2^k us (and at least 2^(k-1)); the last one everything longer (null: no bound).
    bucketsBelowUs: Array.from({ length: HANDOFF_BUCKETS }, (_, k) => (k === HANDOFF_BUCKETS - 1 ? null : 2 ** k)),
    spun: histogram.spin,
    parked: histogram.park,
  };
}

/** One line of --stats output: the non-empty buckets of each row, "none" when no hand-off was timed. */
export function handOffHistogramText(histogram: HandOffHistogram): string {
  const row = (counts: number[]): string => {
    const cells = counts.flatMap((n, bucket) => (n > 0 ? [`${bucketLabel(bucket)}:${n}`] : []));
    return cells.length > 0 ? cells.join(' ') : 'none';
  };
  return `hand-off wait (us, 1 in ${HANDOFF_SAMPLE_EVERY} timed): spun ${row(histogram.spin)}; parked ${row(histogram.park)}`;
}

export function readVcpuStats(buffer: SharedArrayBuffer): VcpuStatValues {
  const values = new Float64Array(buffer);
  return Object.fromEntries(VCPU_STAT_NAMES.map((name, i) => [name, values[i]])) as VcpuStatValues;
}

export const VCPU_STAT_INDEX = Object.fromEntries(VCPU_STAT_NAMES.map((name, i) => [name, i])) as Record<VcpuStatName, number>;

/** Int32 slots of a vCPU's control buffer. */
export const VCPU_CONTROL = {
  /** A VCPU_REQUEST the main thread makes of the running vCPU. */
  request: 0,
  /** 1 while the userspace PIC's INT output is asserted (the boot vCPU injects it). */
  extintPending: 1,
  /**
   * Written by the worker when it honours a request: 1 + the ExtINT vector
   * KVM still holds parked for this vCPU (KVM_INTERRUPT done, not yet taken
   * into the guest), 0 for none. No ioctl reads that vector back, so a
   * snapshot takes it from here (run-loop.ts settleExternalInterrupt).
   */
  parkedExternalInterrupt: 2,
} as const;

/** Control word values the main thread writes to ask a running vCPU to leave KVM_RUN. */
export const VCPU_REQUEST = {
  none: 0,
  pause: 1,
  stop: 2,
} as const;
export const VCPU_CONTROL_BYTES = 16;
