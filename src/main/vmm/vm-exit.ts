// How a VM ended, as a tagged union (crosvm's VmRunMode/ExitState, Cloud
// Hypervisor's VmmExit): the Machine reports one of these, never a process
// exit code; only the CLI turns them into codes. Fatal guest events carry
// where the vCPU stopped: RIP, the mode, the instruction bytes, registers.

import { readVirtual } from '../arch/page-walk';
import type { GuestMemory } from '../arch/guest-memory';
import { EXIT, INTERNAL_ERROR, SYSTEM_EVENT, exitReasonName } from '../../shared/kvm-abi';
import type { VcpuStop } from '../../shared/vcpu-protocol';
import type { Vcpu } from '../kvm/kvm';

/** Where a vCPU stopped, read after it left KVM_RUN. */
export type GuestLocation =
  | {
    rip: string;
    mode: 'long mode' | 'protected mode' | 'real mode';
    csBase: string;
    /** Up to 15 bytes at RIP: KVM's own for an emulation failure, else read through the guest's page tables. */
    instructionBytes: number[];
    registers: string;
  }
  | { unavailable: string };

/** Why the host (not the guest) stopped the VM. */
export type StopCause =
  | { by: 'signal'; signal: NodeJS.Signals }
  | { by: 'console' }
  | { by: 'request' }
  /** PUT /api/v1/vm.shutdown on the control socket: ends the VM as a guest power-off would. */
  | { by: 'api' }
  | { by: 'timeout' }
  | { by: 'output-error'; message: string };

/** What pulled the reset line: the i8042, system control port A, the PIIX3's reset control register, or KVM (a system event). */
export type ResetSource = 'i8042' | 'port 0x92' | 'port 0xcf9' | 'kvm';

export type VmExit =
  | { kind: 'reset'; source: ResetSource }
  | { kind: 'poweroff' }
  | { kind: 'stopped'; cause: StopCause }
  | { kind: 'triple-fault'; vcpu: number; where: GuestLocation }
  | { kind: 'internal-error'; vcpu: number; suberror: number; data: string[]; where: GuestLocation }
  | { kind: 'fail-entry'; vcpu: number; hardwareReason: string; where: GuestLocation }
  | { kind: 'system-event'; vcpu: number; type: number; where: GuestLocation }
  | { kind: 'unexpected-halt'; vcpu: number; where: GuestLocation }
  | { kind: 'unhandled-exit'; vcpu: number; reason: number; where: GuestLocation }
  | { kind: 'vmm-failure'; vcpu?: number; message: string };

export type VmExitKind = VmExit['kind'];

const INTERNAL_ERROR_NAMES: Record<number, string> = {
  [INTERNAL_ERROR.EMULATION]: 'emulation failure',
  [INTERNAL_ERROR.SIMUL_EX]: 'exception while delivering an exception',
  [INTERNAL_ERROR.DELIVERY_EV]: 'event delivery failed',
  [INTERNAL_ERROR.UNEXPECTED_EXIT_REASON]: 'unexpected exit reason',
};

const hex = (value: bigint | number) => `0x${value.toString(16)}`;
const hexBytes = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
const EFER_LMA = 1n << 10n;
const CR0_PE = 1n;

/** Registers and the bytes at RIP of a stopped vCPU. */
function locate(vcpu: Vcpu, memory: GuestMemory, reportedBytes?: number[]): GuestLocation {
  try {
    const regs = vcpu.getRegs();
    const sregs = vcpu.getSregs();
    const instructionBytes = reportedBytes && reportedBytes.length > 0
      ? reportedBytes
      : readVirtual(memory, sregs, sregs.cs.base + regs.rip, 15);
    return {
      rip: hex(regs.rip),
      mode: (sregs.efer & EFER_LMA) !== 0n ? 'long mode' : (sregs.cr0 & CR0_PE) !== 0n ? 'protected mode' : 'real mode',
      csBase: hex(sregs.cs.base),
      instructionBytes,
      registers: `rax=${hex(regs.rax)} rbx=${hex(regs.rbx)} rcx=${hex(regs.rcx)} rdx=${hex(regs.rdx)} `
        + `rsp=${hex(regs.rsp)} rflags=${hex(regs.rflags)} cr0=${hex(sregs.cr0)} cr3=${hex(sregs.cr3)} efer=${hex(sregs.efer)}`,
    };
  } catch (error) {
    return { unavailable: (error as Error).message };
  }
}

/** The VmExit for a vCPU that stopped by itself (stopped/paused are the host's doing and never reach here). */
export function vmExitOf(vcpuId: number, stop: Exclude<VcpuStop, { kind: 'stopped' | 'paused' }>, vcpu: Vcpu, memory: GuestMemory): VmExit {
  const where = () => locate(vcpu, memory);
  switch (stop.kind) {
    case 'shutdown':
      return { kind: 'triple-fault', vcpu: vcpuId, where: where() };
    case 'internal-error':
      return { kind: 'internal-error', vcpu: vcpuId, suberror: stop.suberror, data: stop.data, where: locate(vcpu, memory, stop.insnBytes) };
    case 'system-event':
      if (stop.type === SYSTEM_EVENT.SHUTDOWN) return { kind: 'poweroff' };
      if (stop.type === SYSTEM_EVENT.RESET) return { kind: 'reset', source: 'kvm' };
      return { kind: 'system-event', vcpu: vcpuId, type: stop.type, where: where() };
    case 'fail-entry':
      return { kind: 'fail-entry', vcpu: vcpuId, hardwareReason: stop.hardwareReason, where: where() };
    case 'halted':
      return { kind: 'unexpected-halt', vcpu: vcpuId, where: where() };
    case 'unhandled-exit':
      return { kind: 'unhandled-exit', vcpu: vcpuId, reason: stop.reason, where: where() };
    case 'run-failed':
      return { kind: 'vmm-failure', vcpu: vcpuId, message: stop.message };
  }
}

function describeCause(cause: StopCause): string {
  switch (cause.by) {
    case 'signal': return `stopped by ${cause.signal}`;
    case 'console': return 'quit from the console (Ctrl-A x)';
    case 'request': return 'stopped on request';
    case 'api': return 'shut down through the control API (vm.shutdown)';
    case 'timeout': return 'stopped: time limit reached';
    case 'output-error': return `stopped: ${cause.message}`;
  }
}

function describeLocation(where: GuestLocation): string {
  if ('unavailable' in where) return `registers unavailable: ${where.unavailable}`;
  const bytes = where.instructionBytes.length ? hexBytes(where.instructionBytes) : 'unreadable';
  return `RIP ${where.rip} (${where.mode}, CS base ${where.csBase}), instruction bytes: ${bytes}\n  ${where.registers}`;
}

/** One line saying how the VM ended, and for guest faults the lines saying where. */
export function describeVmExit(exit: VmExit): { summary: string; detail?: string } {
  const who = 'vcpu' in exit && exit.vcpu !== undefined ? `vCPU ${exit.vcpu}: ` : '';
  switch (exit.kind) {
    case 'reset': return { summary: exit.source === 'kvm' ? 'guest reset' : `guest reset (${exit.source})` };
    case 'poweroff': return { summary: 'guest powered off' };
    case 'stopped': return { summary: describeCause(exit.cause) };
    case 'triple-fault':
      return { summary: `${who}triple fault (${exitReasonName(EXIT.SHUTDOWN)})`, detail: describeLocation(exit.where) };
    case 'internal-error': {
      const name = INTERNAL_ERROR_NAMES[exit.suberror] ?? `suberror ${exit.suberror}`;
      return {
        summary: `${who}${exitReasonName(EXIT.INTERNAL_ERROR)}, ${name} (suberror ${exit.suberror}; data ${exit.data.join(' ') || 'none'})`,
        detail: describeLocation(exit.where),
      };
    }
    case 'system-event':
      return { summary: `${who}${exitReasonName(EXIT.SYSTEM_EVENT)} type ${exit.type}`, detail: describeLocation(exit.where) };
    case 'fail-entry':
      return { summary: `${who}${exitReasonName(EXIT.FAIL_ENTRY)}, hardware entry failure reason ${exit.hardwareReason}`, detail: describeLocation(exit.where) };
    case 'unexpected-halt':
      return { summary: `${who}${exitReasonName(EXIT.HLT)} reached userspace (the in-kernel LAPIC should have kept it)`, detail: describeLocation(exit.where) };
    case 'unhandled-exit':
      return { summary: `${who}${exitReasonName(exit.reason)} is not handled by tsvmm`, detail: describeLocation(exit.where) };
    case 'vmm-failure':
      return { summary: `${who}${exit.message}` };
  }
}
