// How a guest ended, as the CLI reports it: an exit code and one line, plus
// for fatal guest events a diagnostic naming the vCPU, the exit, RIP and the
// instruction bytes there.

import { readVirtual } from '../arch/page-walk';
import { GuestMemory } from '../arch/guest-memory';
import { EXIT, INTERNAL_ERROR, SYSTEM_EVENT, exitReasonName } from '../../shared/kvm-abi';
import type { VcpuStop } from '../../shared/vcpu-protocol';
import type { Vcpu } from '../kvm/kvm';

export interface GuestExit {
  code: number;
  reason: string;
  /** Extra lines for stderr (registers, instruction bytes). */
  diagnostic?: string;
}

export const EXIT_CODE = {
  guestEnded: 0,
  vmmFailure: 1,
  usage: 2,
  tripleFault: 3,
  internalError: 4,
  otherGuestFault: 5,
  interrupted: 130,
} as const;

const INTERNAL_ERROR_NAMES: Record<number, string> = {
  [INTERNAL_ERROR.EMULATION]: 'emulation failure',
  [INTERNAL_ERROR.SIMUL_EX]: 'exception while delivering an exception',
  [INTERNAL_ERROR.DELIVERY_EV]: 'event delivery failed',
  [INTERNAL_ERROR.UNEXPECTED_EXIT_REASON]: 'unexpected exit reason',
};

const hexBytes = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');

/** Registers and the bytes at RIP, read after the vCPU has stopped. */
function whereItStopped(vcpu: Vcpu, memory: GuestMemory, reportedBytes?: number[]): string {
  try {
    const regs = vcpu.getRegs();
    const sregs = vcpu.getSregs();
    const linearRip = sregs.cs.base + regs.rip;
    const bytes = reportedBytes && reportedBytes.length > 0
      ? reportedBytes
      : readVirtual(memory, sregs, linearRip, 15);
    const rip = `0x${regs.rip.toString(16)}`;
    const mode = (sregs.efer & (1n << 10n)) !== 0n ? 'long mode' : (sregs.cr0 & 1n) !== 0n ? 'protected mode' : 'real mode';
    return `RIP ${rip} (${mode}, CS base 0x${sregs.cs.base.toString(16)}), instruction bytes: ${bytes.length ? hexBytes(bytes) : 'unreadable'}\n`
      + `  rax=0x${regs.rax.toString(16)} rbx=0x${regs.rbx.toString(16)} rcx=0x${regs.rcx.toString(16)} rdx=0x${regs.rdx.toString(16)} `
      + `rsp=0x${regs.rsp.toString(16)} rflags=0x${regs.rflags.toString(16)} cr0=0x${sregs.cr0.toString(16)} cr3=0x${sregs.cr3.toString(16)} efer=0x${sregs.efer.toString(16)}`;
  } catch (error) {
    return `registers unavailable: ${(error as Error).message}`;
  }
}

export function describeStop(vcpuId: number, stop: VcpuStop, vcpu: Vcpu, memory: GuestMemory): GuestExit {
  const who = `vCPU ${vcpuId}`;
  switch (stop.kind) {
    case 'stopped':
    case 'paused':
      return { code: EXIT_CODE.guestEnded, reason: `${who} stopped` };
    case 'shutdown':
      return {
        code: EXIT_CODE.tripleFault,
        reason: `${who}: triple fault (${exitReasonName(EXIT.SHUTDOWN)})`,
        diagnostic: whereItStopped(vcpu, memory),
      };
    case 'internal-error': {
      const name = INTERNAL_ERROR_NAMES[stop.suberror] ?? `suberror ${stop.suberror}`;
      return {
        code: EXIT_CODE.internalError,
        reason: `${who}: ${exitReasonName(EXIT.INTERNAL_ERROR)}, ${name} (suberror ${stop.suberror}; data ${stop.data.join(' ') || 'none'})`,
        diagnostic: whereItStopped(vcpu, memory, stop.insnBytes),
      };
    }
    case 'system-event':
      if (stop.type === SYSTEM_EVENT.SHUTDOWN) return { code: EXIT_CODE.guestEnded, reason: 'guest powered off' };
      if (stop.type === SYSTEM_EVENT.RESET) return { code: EXIT_CODE.guestEnded, reason: 'guest reset' };
      return {
        code: EXIT_CODE.otherGuestFault,
        reason: `${who}: ${exitReasonName(EXIT.SYSTEM_EVENT)} type ${stop.type}`,
        diagnostic: whereItStopped(vcpu, memory),
      };
    case 'fail-entry':
      return {
        code: EXIT_CODE.otherGuestFault,
        reason: `${who}: ${exitReasonName(EXIT.FAIL_ENTRY)}, hardware entry failure reason ${stop.hardwareReason}`,
        diagnostic: whereItStopped(vcpu, memory),
      };
    case 'halted':
      return {
        code: EXIT_CODE.otherGuestFault,
        reason: `${who}: ${exitReasonName(EXIT.HLT)} reached userspace (the in-kernel LAPIC should have kept it)`,
        diagnostic: whereItStopped(vcpu, memory),
      };
    case 'unhandled-exit':
      return {
        code: EXIT_CODE.otherGuestFault,
        reason: `${who}: ${exitReasonName(stop.reason)} is not handled by tsvmm`,
        diagnostic: whereItStopped(vcpu, memory),
      };
    case 'run-failed':
      return { code: EXIT_CODE.vmmFailure, reason: `${who}: ${stop.message}` };
  }
}
