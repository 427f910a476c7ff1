// Checks every ioctl number, constant and struct offset in kvm-abi.ts
// against <linux/kvm.h> as the C compiler sees it: a small C program prints
// the real values and the test compares.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CAP, CPUID_ENTRY, DTABLE, ENABLE_CAP, EXIT, FPU, IOCTL, IRQFD, KVM_RUN, MEMORY_REGION, MSI, SEGMENT, SIZEOF, SREGS,
  SYSTEM_EVENT, INTERNAL_ERROR, IRQ_ROUTING_ENTRY, KVM_IRQ_ROUTING_MSI, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP, KVM_PIT_SPEAKER_DUMMY,
  IOEVENTFD, KVM_IOEVENTFD_FLAG, MSR_LIST, MSR_ENTRY, IRQCHIP_STATE, CLOCK_DATA, VCPU_EVENTS, KVM_VCPUEVENT_VALID,
} from '../../../src/shared/kvm-abi';

const HEADER = '/usr/include/linux/kvm.h';

const cLines: string[] = [];
const expected = new Map<string, number>();
function value(name: string, cExpression: string, ours: number): void {
  cLines.push(`  printf("%s %llu\\n", "${name}", (unsigned long long)(${cExpression}));`);
  expected.set(name, ours);
}

for (const [name, number] of Object.entries(IOCTL)) value(name, name, number);
for (const [name, number] of Object.entries(CAP)) value(name, name, number);
for (const [name, number] of Object.entries(EXIT)) value(`KVM_EXIT_${name}`, `KVM_EXIT_${name}`, number);
for (const [name, number] of Object.entries(SYSTEM_EVENT)) value(`KVM_SYSTEM_EVENT_${name}`, `KVM_SYSTEM_EVENT_${name}`, number);
for (const [name, number] of Object.entries(INTERNAL_ERROR)) value(`KVM_INTERNAL_ERROR_${name}`, `KVM_INTERNAL_ERROR_${name}`, number);
value('KVM_IRQ_ROUTING_MSI', 'KVM_IRQ_ROUTING_MSI', KVM_IRQ_ROUTING_MSI);
value('KVM_IRQ_ROUTING_IRQCHIP', 'KVM_IRQ_ROUTING_IRQCHIP', KVM_IRQ_ROUTING_IRQCHIP);
for (const [name, chip] of Object.entries(KVM_IRQCHIP)) value(`KVM_IRQCHIP_${name}`, `KVM_IRQCHIP_${name}`, chip);
value('KVM_PIT_SPEAKER_DUMMY', 'KVM_PIT_SPEAKER_DUMMY', KVM_PIT_SPEAKER_DUMMY);
for (const [name, bit] of Object.entries(KVM_IOEVENTFD_FLAG)) value(`KVM_IOEVENTFD_FLAG_${name}`, `KVM_IOEVENTFD_FLAG_${name}`, bit);
for (const [name, bit] of Object.entries(KVM_VCPUEVENT_VALID)) value(`KVM_VCPUEVENT_VALID_${name}`, `KVM_VCPUEVENT_VALID_${name}`, bit);
for (const [name, size] of Object.entries(SIZEOF)) value(`sizeof ${name}`, `sizeof(struct ${name})`, size);

const runFields: Record<keyof typeof KVM_RUN, string> = {
  request_interrupt_window: 'request_interrupt_window', immediate_exit: 'immediate_exit', exit_reason: 'exit_reason',
  ready_for_interrupt_injection: 'ready_for_interrupt_injection', if_flag: 'if_flag', flags: 'flags', cr8: 'cr8',
  apic_base: 'apic_base', io_direction: 'io.direction', io_size: 'io.size', io_port: 'io.port', io_count: 'io.count',
  io_data_offset: 'io.data_offset', mmio_phys_addr: 'mmio.phys_addr', mmio_data: 'mmio.data', mmio_len: 'mmio.len',
  mmio_is_write: 'mmio.is_write', fail_entry_reason: 'fail_entry.hardware_entry_failure_reason',
  fail_entry_cpu: 'fail_entry.cpu', internal_suberror: 'internal.suberror', internal_ndata: 'internal.ndata',
  internal_data: 'internal.data', emulation_flags: 'emulation_failure.flags',
  emulation_insn_size: 'emulation_failure.insn_size', emulation_insn_bytes: 'emulation_failure.insn_bytes',
  system_event_type: 'system_event.type', system_event_ndata: 'system_event.ndata',
  system_event_data: 'system_event.data', hw_exit_reason: 'hw.hardware_exit_reason', eoi_vector: 'eoi.vector',
};
for (const [name, field] of Object.entries(runFields)) {
  value(`kvm_run.${name}`, `offsetof(struct kvm_run, ${field})`, KVM_RUN[name as keyof typeof KVM_RUN]);
}
const structs: Array<[string, Record<string, number>, Record<string, string>?]> = [
  ['kvm_segment', SEGMENT],
  ['kvm_sregs', SREGS],
  ['kvm_dtable', DTABLE],
  ['kvm_fpu', FPU, { fcw: 'fcw', fsw: 'fsw', ftwx: 'ftwx', last_opcode: 'last_opcode', last_ip: 'last_ip', last_dp: 'last_dp', fpr: 'fpr', xmm: 'xmm', mxcsr: 'mxcsr' }],
  ['kvm_cpuid_entry2', CPUID_ENTRY],
  ['kvm_userspace_memory_region', MEMORY_REGION],
  ['kvm_irqfd', IRQFD],
  ['kvm_ioeventfd', IOEVENTFD],
  ['kvm_enable_cap', ENABLE_CAP],
  ['kvm_msi', MSI],
  ['kvm_msr_list', MSR_LIST, { nmsrs: 'nmsrs', indices: 'indices' }],
  ['kvm_msr_entry', MSR_ENTRY],
  ['kvm_irqchip', IRQCHIP_STATE],
  ['kvm_clock_data', CLOCK_DATA],
  ['kvm_vcpu_events', VCPU_EVENTS, { interruptInjected: 'interrupt.injected', interruptVector: 'interrupt.nr', flags: 'flags' }],
  ['kvm_irq_routing_entry', IRQ_ROUTING_ENTRY, {
    gsi: 'gsi', type: 'type', flags: 'flags', irqchip_irqchip: 'u.irqchip.irqchip', irqchip_pin: 'u.irqchip.pin', msi_address_lo: 'u.msi.address_lo', msi_address_hi: 'u.msi.address_hi', msi_data: 'u.msi.data',
  }],
];
for (const [struct, offsets, rename] of structs) {
  for (const [field, offset] of Object.entries(offsets)) {
    value(`${struct}.${field}`, `offsetof(struct ${struct}, ${rename?.[field] ?? field})`, offset);
  }
}

test('every KVM number and struct offset in kvm-abi.ts matches <linux/kvm.h>', () => {
  const haveCompiler = spawnSync('sh', ['-c', 'command -v gcc'], { stdio: 'ignore' }).status === 0;
  if (!haveCompiler || !fs.existsSync(HEADER)) {
    console.log(`not checked: needs gcc and ${HEADER}`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-abi-'));
  const source = path.join(dir, 'abi.c');
  const binary = path.join(dir, 'abi');
  fs.writeFileSync(source, `#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\nint main(void) {\n${cLines.join('\n')}\n  return 0;\n}\n`);
  const compiled = spawnSync('gcc', ['-o', binary, source], { encoding: 'utf8' });
  assert.is(compiled.status, 0, compiled.stderr);
  const output = spawnSync(binary, { encoding: 'utf8' }).stdout;
  const actual = new Map(output.trim().split('\n').map((line) => {
    const at = line.lastIndexOf(' ');
    return [line.slice(0, at), Number(line.slice(at + 1))] as [string, number];
  }));
  const mismatches = [...expected].filter(([name, ours]) => actual.get(name) !== ours)
    .map(([name, ours]) => `${name}: tsvmm ${ours}, kvm.h ${actual.get(name)}`);
  assert.equal(mismatches, []);
  assert.is(actual.size, expected.size);
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
