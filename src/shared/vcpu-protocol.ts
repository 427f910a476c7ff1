// What the main thread and a vCPU worker say to each other over comlink
// (control only; exits go through exit-channel.ts).

import type { MessagePort } from 'node:worker_threads';
import type { Regs } from './kvm-structs';

/**
 * How a forwarded exit reaches the device thread:
 * - spin-park: shared-memory channel; the vCPU spins, then parks (default);
 * - park: the same channel, parking at once (futex-only, for comparison);
 * - post-message: the request is a postMessage, the answer a shared-memory wake;
 * - comlink: a comlink RPC per exit (what the control path uses);
 * - native: the spin-park protocol, with the vCPU's exit loop in the addon
 *   (JavaScript sees only the exits the loop does not handle).
 */
export const HAND_OFF_MODES = ['spin-park', 'park', 'post-message', 'comlink', 'native'] as const;
export type HandOffMode = (typeof HAND_OFF_MODES)[number];

export interface VcpuWorkerConfig {
  vcpuId: number;
  vcpuFd: number;
  /** Host address and size of this vCPU's kvm_run mapping. */
  runAddress: bigint;
  runSize: number;
  channel: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
  control: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** The shared claim table (address-claims.ts ClaimTable.buffer). */
  claims: SharedArrayBuffer;
  handOff: HandOffMode;
  spinLimit: number;
  /** This vCPU takes the userspace PIC's interrupts (the boot vCPU with the split irqchip). */
  injectsExtint: boolean;
  /** A restored vCPU: the ExtINT vector KVM held parked when the snapshot was taken, put back before the first run. */
  parkedExternalInterrupt?: number;
  /** For the native hand-off: the device waker (native deviceWakerCreate) that wakes a parked device thread. */
  deviceWaker?: number;
  /** For post-message and comlink hand-offs: the port to the device thread. */
  devicePort?: MessagePort;
}

/** Why a vCPU's run loop returned. */
export type VcpuStop =
  | { kind: 'stopped' }
  | { kind: 'paused' }
  | { kind: 'halted' }
  | { kind: 'shutdown' }
  | { kind: 'internal-error'; suberror: number; data: string[]; insnBytes?: number[] }
  | { kind: 'fail-entry'; hardwareReason: string }
  | { kind: 'system-event'; type: number }
  | { kind: 'unhandled-exit'; reason: number }
  | { kind: 'run-failed'; errno: number; message: string };

export interface VcpuWorkerApi {
  /** Maps kvm_run and the channel; returns this thread's handle for kicks. */
  init(config: VcpuWorkerConfig): bigint;
  /** Runs the guest until a stop request or a guest event that ends this vCPU. */
  run(): Promise<VcpuStop>;
  /** KVM_GET_REGS on this vCPU; only between runs. */
  registers(): Regs;
}

/** The device thread's side of the comlink hand-off. */
export interface DeviceRpcApi {
  serve(vcpuId: number, sequence: number): void;
}
