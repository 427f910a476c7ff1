// What the addon's native exit loop (hand-off mode "native", vcpuLoopCreate in
// native/tsvmm_native.cc) needs to know: the same tables the JavaScript loop
// reads, passed in once, so the layouts of kvm_run, the exit channel, the
// doorbell, the claim table and the stats and control words stay defined here
// in TypeScript only.

import { CLAIM_TABLE_LAYOUT } from './address-claims';
import { CHANNEL_SLOT, DOORBELL_SLOT, MAX_SEQUENCE, MIN_SPIN } from './exit-channel';
import { EXIT, IO_DIRECTION_OUT, KVM_RUN } from './kvm-abi';
import { ACCESS_KIND } from './kvm-run';
import { HANDOFF_HISTOGRAM_LAYOUT, VCPU_CONTROL, VCPU_REQUEST, VCPU_STAT_INDEX } from './vcpu-stats';

/** What vcpuLoopRun returns when it is not -errno. */
export const NATIVE_LOOP_RETURN = {
  /** kvm_run holds an exit the loop does not handle (not yet counted in the stats). */
  exit: 1,
  /** The userspace PIC's INT went up while the guest ran: inject before running on. */
  interrupt: 2,
} as const;

export interface NativeExitLoopLayout {
  kvmRun: Record<'exit_reason' | 'immediate_exit' | 'io_direction' | 'io_size' | 'io_port' | 'io_count' | 'io_data_offset'
    | 'mmio_phys_addr' | 'mmio_data' | 'mmio_len' | 'mmio_is_write' | 'eoi_vector', number>;
  exit: Record<'IO' | 'MMIO' | 'IOAPIC_EOI', number>;
  ioDirectionOut: number;
  accessKind: Record<'ioRead' | 'ioWrite' | 'mmioRead' | 'mmioWrite' | 'eoi', number>;
  channel: Record<keyof typeof CHANNEL_SLOT, number>;
  maxSequence: number;
  doorbell: Record<keyof typeof DOORBELL_SLOT, number>;
  claims: Record<keyof typeof CLAIM_TABLE_LAYOUT, number>;
  stats: Record<'kvmRuns' | 'ioExits' | 'mmioExits' | 'forwarded' | 'unclaimed' | 'spinHits' | 'parks' | 'interrupted' | 'otherExits', number>;
  control: Record<keyof typeof VCPU_CONTROL, number>;
  requestNone: number;
  handOffWaits: Record<keyof typeof HANDOFF_HISTOGRAM_LAYOUT, number>;
  returns: Record<keyof typeof NATIVE_LOOP_RETURN, number>;
}

/** vcpuLoopCreate's argument. The typed arrays view the same shared buffers the JavaScript side uses. */
export interface NativeExitLoopConfig {
  vcpuFd: number;
  runRequest: number;
  runAddress: bigint;
  runSize: number;
  channel: Int32Array;
  doorbell: Int32Array;
  control: Int32Array;
  stats: Float64Array;
  claims: Uint8Array;
  deviceWaker: number;
  spinLimit: number;
  minSpin: number;
  injectsExtint: boolean;
  layout: NativeExitLoopLayout;
}

/** The layout, from the tables the JavaScript side uses. */
function nativeExitLoopLayout(): NativeExitLoopLayout {
  const s = VCPU_STAT_INDEX;
  return {
    kvmRun: {
      exit_reason: KVM_RUN.exit_reason,
      immediate_exit: KVM_RUN.immediate_exit,
      io_direction: KVM_RUN.io_direction,
      io_size: KVM_RUN.io_size,
      io_port: KVM_RUN.io_port,
      io_count: KVM_RUN.io_count,
      io_data_offset: KVM_RUN.io_data_offset,
      mmio_phys_addr: KVM_RUN.mmio_phys_addr,
      mmio_data: KVM_RUN.mmio_data,
      mmio_len: KVM_RUN.mmio_len,
      mmio_is_write: KVM_RUN.mmio_is_write,
      eoi_vector: KVM_RUN.eoi_vector,
    },
    exit: { IO: EXIT.IO, MMIO: EXIT.MMIO, IOAPIC_EOI: EXIT.IOAPIC_EOI },
    ioDirectionOut: IO_DIRECTION_OUT,
    accessKind: {
      ioRead: ACCESS_KIND.ioRead, ioWrite: ACCESS_KIND.ioWrite, mmioRead: ACCESS_KIND.mmioRead, mmioWrite: ACCESS_KIND.mmioWrite, eoi: ACCESS_KIND.eoi,
    },
    channel: CHANNEL_SLOT,
    maxSequence: MAX_SEQUENCE,
    doorbell: DOORBELL_SLOT,
    claims: CLAIM_TABLE_LAYOUT,
    stats: {
      kvmRuns: s.kvmRuns, ioExits: s.ioExits, mmioExits: s.mmioExits, forwarded: s.forwarded, unclaimed: s.unclaimed,
      spinHits: s.spinHits, parks: s.parks, interrupted: s.interrupted, otherExits: s.otherExits,
    },
    control: VCPU_CONTROL,
    requestNone: VCPU_REQUEST.none,
    handOffWaits: HANDOFF_HISTOGRAM_LAYOUT,
    returns: NATIVE_LOOP_RETURN,
  };
}

/** The native loop's config for one vCPU; `claims` is the whole claim table buffer. */
export function nativeExitLoopConfig(options: {
  vcpuFd: number; runRequest: number; runAddress: bigint; runSize: number;
  channel: SharedArrayBuffer; doorbell: SharedArrayBuffer; control: SharedArrayBuffer; stats: SharedArrayBuffer; claims: SharedArrayBuffer;
  deviceWaker: number; spinLimit: number; injectsExtint: boolean;
}): NativeExitLoopConfig {
  return {
    vcpuFd: options.vcpuFd,
    runRequest: options.runRequest,
    runAddress: options.runAddress,
    runSize: options.runSize,
    channel: new Int32Array(options.channel),
    doorbell: new Int32Array(options.doorbell),
    control: new Int32Array(options.control),
    stats: new Float64Array(options.stats),
    claims: new Uint8Array(options.claims),
    deviceWaker: options.deviceWaker,
    spinLimit: options.spinLimit,
    // As waitCounters: the budget never halves below this (nor above the limit).
    minSpin: MIN_SPIN,
    injectsExtint: options.injectsExtint,
    layout: nativeExitLoopLayout(),
  };
}
