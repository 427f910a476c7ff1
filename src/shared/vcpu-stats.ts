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

export const VCPU_STATS_BYTES = VCPU_STAT_NAMES.length * 8;

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
} as const;

/** Control word values the main thread writes to ask a running vCPU to leave KVM_RUN. */
export const VCPU_REQUEST = {
  none: 0,
  pause: 1,
  stop: 2,
} as const;
export const VCPU_CONTROL_BYTES = 16;
