// The Intel MultiProcessor Specification 1.4 tables that tell a guest
// without ACPI how many CPUs it has and how interrupts reach the IOAPIC.
// Linux finds the floating pointer by scanning the last KiB of base memory
// (mpparse.c smp_scan_config at 639 KiB, which is MPTABLE_START) and then
// walks the configuration table it points to. Follows crosvm's
// x86_64/src/mptable.rs; the differences are noted where they occur.

import { GuestMemory, hex } from './guest-memory';
import {
  GSI_LEGACY_END, GSI_PCI_INTX_START, HIGH_MEMORY_START, IOAPIC_PINS, IOAPIC_START, LAPIC_START, MPTABLE_START,
} from '../layout';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

// ---- Struct layouts: MP Spec 1.4 chapter 4, as Linux declares them in
// arch/x86/include/asm/mpspec_def.h. Offsets in bytes.

/** MP floating pointer structure (MP Spec 4.1, struct mpf_intel). */
const MPF = {
  signature: 0, physptr: 4, length: 8, specification: 9, checksum: 10, feature1: 11, SIZE: 16,
} as const;

/** MP configuration table header (MP Spec 4.2, struct mpc_table). */
const MPC = {
  signature: 0, length: 4, spec: 6, checksum: 7, oem: 8, productid: 16, oemptr: 28, oemsize: 32,
  oemcount: 34, lapic: 36, extendedLength: 40, extendedChecksum: 42, SIZE: 44,
} as const;

/** Processor entry (MP Spec 4.3.1, struct mpc_cpu). */
const CPU_ENTRY = { type: 0, apicid: 1, apicver: 2, cpuflag: 3, cpufeature: 4, featureflag: 8, SIZE: 20 } as const;
/** Bus entry (MP Spec 4.3.2, struct mpc_bus). */
const BUS_ENTRY = { type: 0, busid: 1, bustype: 2, SIZE: 8 } as const;
/** I/O APIC entry (MP Spec 4.3.3, struct mpc_ioapic). */
const IOAPIC_ENTRY = { type: 0, apicid: 1, apicver: 2, flags: 3, apicaddr: 4, SIZE: 8 } as const;
/**
 * I/O interrupt assignment (MP Spec 4.3.4, struct mpc_intsrc) and local
 * interrupt assignment (4.3.5, struct mpc_lintsrc) share one layout.
 */
const INTERRUPT_ENTRY = { type: 0, irqtype: 1, irqflag: 2, srcbus: 4, srcbusirq: 5, dstapic: 6, dstirq: 7, SIZE: 8 } as const;

// ---- Field values.

/** Floating pointer signature; Linux's smp_scan_config matches it on 16-byte boundaries. */
const MPF_SIGNATURE = '_MP_';
/** Configuration table signature checked by smp_check_mpc. */
const MPC_SIGNATURE = 'PCMP';
/** The floating pointer is one 16-byte paragraph long; Linux rejects any other length. */
const MPF_LENGTH_PARAGRAPHS = 1;
/** Specification revision 1.4 (Linux accepts 1 and 4). */
const MP_SPEC_REVISION = 4;
/** OEM id (8 bytes, space padded) and product id (12 bytes) shown by Linux's mpparse. */
const MPC_OEM_ID = 'TSVMM   ';
const MPC_PRODUCT_ID = 'TSVMM KVM   ';

/** Entry type codes (MP Spec Table 4-3). */
const MP_PROCESSOR = 0;
const MP_BUS = 1;
const MP_IOAPIC = 2;
const MP_INTSRC = 3;
const MP_LINTSRC = 4;

/** Local APIC version of KVM's in-kernel xAPIC (crosvm's APIC_VERSION). */
const LAPIC_VERSION = 0x14;
/** Version register value of KVM's in-kernel IOAPIC (IOAPIC_VERSION_ID in kvm/ioapic.h). */
const IOAPIC_VERSION = 0x11;
/** cpuflag bit: the processor is usable. */
const CPU_ENABLED = 0x01;
/** cpuflag bit: this is the bootstrap processor. */
const CPU_BOOTPROCESSOR = 0x02;
/** CPU signature (family 6, model 0, stepping 0) as crosvm; Linux only prints it. */
const CPU_SIGNATURE = 0x600;
/** CPUID.1:EDX feature flags FPU (bit 0) and APIC (bit 9), as crosvm. */
const CPU_FEATURE_FPU = 0x001;
const CPU_FEATURE_APIC = 0x200;
/** IOAPIC flags bit: usable. */
const MPC_APIC_USABLE = 0x01;

/** Bus type strings, 6 bytes space padded (MP Spec Table 4-8). */
const BUS_TYPE_PCI = 'PCI   ';
const BUS_TYPE_ISA = 'ISA   ';
/** The single PCI root bus; crosvm numbers PCI buses from 0 and puts ISA after the last one. */
const PCI_BUS_ID = 0;
const ISA_BUS_ID = 1;

/** Interrupt types (MP Spec Table 4-11). */
const MP_INT = 0;
const MP_NMI = 1;
const MP_EXTINT = 3;
/** Polarity and trigger mode "conforms to the bus" (edge/high on ISA, level/low on PCI). */
const MP_IRQFLAG_CONFORMS_TO_BUS = 0;
/** Destination APIC id meaning every local APIC (MP Spec 4.3.5). */
const ALL_LOCAL_APICS = 0xff;
/** Local APIC interrupt input pins. */
const LINT0 = 0;
const LINT1 = 1;

/** ISA IRQs 0-15 exist on the legacy PICs; each is wired to the same-numbered IOAPIC pin as KVM's default routing does. */
const ISA_IRQ_COUNT = GSI_LEGACY_END;
const IOAPIC_PIN_COUNT = IOAPIC_PINS;
/** First IRQ handed to PCI devices: 0-8 belong to legacy ISA devices, the CMOS RTC being 8 (crosvm's X86_64_IRQ_BASE). */
const PCI_IRQ_BASE = GSI_PCI_INTX_START;
/** PCI allows 32 devices per bus; the device number fills bits 2-6 of the source bus IRQ. */
const PCI_DEVICES_PER_BUS = 32;

/**
 * The largest vCPU count the table can describe. xAPIC ids are 8 bits and
 * 0xff means "all local APICs", so only 0..0xfe name one APIC. The vCPUs take
 * ids 0..cpuCount-1 (the ids tsvmm also puts in CPUID leaf 1) and the IOAPIC
 * takes cpuCount, so cpuCount + 1 ids must fit in 0..0xfe: 254 CPUs. More
 * would need x2APIC and ACPI MADT tables.
 */
export const MAX_MPTABLE_CPUS = 254;

/** A PCI interrupt pin as the device's Interrupt Pin register numbers it, minus one. */
export type PciInterruptPin = 'INTA' | 'INTB' | 'INTC' | 'INTD';
const PCI_PIN_NUMBERS: Record<PciInterruptPin, number> = { INTA: 0, INTB: 1, INTC: 2, INTD: 3 };

/** One PCI device pin on bus 0 wired to an IOAPIC pin. */
export interface PciInterruptRoute {
  /** Device number on bus 0 (0-31). */
  device: number;
  pin: PciInterruptPin;
  /** IOAPIC pin / GSI, PCI_IRQ_BASE..23. */
  irq: number;
}

export interface MpTableOptions {
  cpuCount: number;
  pciInterrupts?: readonly PciInterruptRoute[];
}

/** Guest-physical range the tables occupy: [start, end). */
export interface MpTablePlacement {
  start: number;
  end: number;
}

export class MpTableError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('usage', message, options);
  }
}

/**
 * Writes the floating pointer at MPTABLE_START and the configuration table
 * right after it, as crosvm and Firecracker do. With many CPUs the table runs
 * past the EBDA's 1 KiB into the legacy hole at 0xa0000; that is backed RAM
 * the e820 map does not report as usable, and Linux keeps the whole first
 * MiB for itself, so nothing else is placed there. It must end below the
 * kernel at HIGH_MEMORY_START. Entries follow the spec's ascending type order
 * (crosvm puts the IOAPIC before the buses; Linux accepts either).
 */
export function writeMpTable(mem: GuestMemory, options: MpTableOptions): MpTablePlacement {
  const { cpuCount } = options;
  if (!Number.isInteger(cpuCount) || cpuCount < 1 || cpuCount > MAX_MPTABLE_CPUS) {
    throw new MpTableError(
      `cannot describe ${cpuCount} vCPUs in an MP table: it supports 1 to ${MAX_MPTABLE_CPUS} (8-bit xAPIC ids, one kept for the IOAPIC); pass --cpus between 1 and ${MAX_MPTABLE_CPUS}`,
    );
  }
  const pciInterrupts = options.pciInterrupts ?? [];
  checkPciInterrupts(pciInterrupts);

  const tableAddress = MPTABLE_START + MPF.SIZE;
  const table = buildConfigurationTable(cpuCount, pciInterrupts);
  const floatingPointer = buildFloatingPointer(tableAddress);
  const end = tableAddress + table.length;

  if (end > HIGH_MEMORY_START) {
    throw new MpTableError(
      `the MP table for ${cpuCount} vCPUs would end at ${hex(end)}, past the kernel at ${hex(HIGH_MEMORY_START)}; use fewer vCPUs or PCI interrupt routes`,
    );
  }
  if (!mem.contains(MPTABLE_START, end - MPTABLE_START)) {
    throw new MpTableError(
      `the MP table needs guest RAM at ${hex(MPTABLE_START)}..${hex(end)}, which this guest memory does not cover; give the guest at least 1 MiB of RAM`,
    );
  }
  mem.write(MPTABLE_START, floatingPointer);
  mem.write(tableAddress, table);
  return { start: MPTABLE_START, end };
}

function checkPciInterrupts(routes: readonly PciInterruptRoute[]): void {
  const seen = new Set<string>();
  for (const { device, pin, irq } of routes) {
    if (!Number.isInteger(device) || device < 0 || device >= PCI_DEVICES_PER_BUS) {
      throw new MpTableError(`PCI device number ${device} is not 0..${PCI_DEVICES_PER_BUS - 1}; pass the device's slot on bus 0`);
    }
    if (!(pin in PCI_PIN_NUMBERS)) {
      throw new MpTableError(`PCI interrupt pin ${String(pin)} of device ${device} is not one of INTA, INTB, INTC, INTD`);
    }
    if (!Number.isInteger(irq) || irq < PCI_IRQ_BASE || irq >= IOAPIC_PIN_COUNT) {
      throw new MpTableError(
        `PCI device ${device} ${pin} is routed to IRQ ${irq}; PCI IRQs must be ${PCI_IRQ_BASE}..${IOAPIC_PIN_COUNT - 1} (below ${PCI_IRQ_BASE} are ISA devices, the IOAPIC has ${IOAPIC_PIN_COUNT} pins)`,
      );
    }
    const key = `${device}/${pin}`;
    if (seen.has(key)) {
      throw new MpTableError(`PCI device ${device} ${pin} is routed twice; give each device pin one IRQ`);
    }
    seen.add(key);
  }
}

function buildFloatingPointer(tableAddress: number): Uint8Array {
  const bytes = new Uint8Array(MPF.SIZE);
  const view = viewOf(bytes);
  writeAscii(bytes, MPF.signature, MPF_SIGNATURE);
  view.setUint32(MPF.physptr, tableAddress, true);
  view.setUint8(MPF.length, MPF_LENGTH_PARAGRAPHS);
  view.setUint8(MPF.specification, MP_SPEC_REVISION);
  // feature1 = 0: a configuration table is present (no default configuration).
  view.setUint8(MPF.checksum, checksumByte(bytes));
  return bytes;
}

function buildConfigurationTable(cpuCount: number, pciInterrupts: readonly PciInterruptRoute[]): Uint8Array {
  const ioapicId = cpuCount;
  const pciIrqs = new Set(pciInterrupts.map((route) => route.irq));
  const entries: Uint8Array[] = [];

  for (let cpu = 0; cpu < cpuCount; cpu++) entries.push(processorEntry(cpu));
  entries.push(busEntry(PCI_BUS_ID, BUS_TYPE_PCI));
  entries.push(busEntry(ISA_BUS_ID, BUS_TYPE_ISA));
  entries.push(ioapicEntry(ioapicId));
  for (let irq = 0; irq < ISA_IRQ_COUNT; irq++) {
    // An IRQ given to a PCI device is no longer an ISA line.
    if (pciIrqs.has(irq)) continue;
    entries.push(interruptEntry(MP_INTSRC, MP_INT, ISA_BUS_ID, irq, ioapicId, irq));
  }
  for (const { device, pin, irq } of pciInterrupts) {
    const sourceBusIrq = (device << 2) | PCI_PIN_NUMBERS[pin];
    entries.push(interruptEntry(MP_INTSRC, MP_INT, PCI_BUS_ID, sourceBusIrq, ioapicId, irq));
  }
  // The 8259 PIC drives the BSP's LINT0 (virtual wire mode); NMI reaches every CPU's LINT1. As SeaBIOS and crosvm.
  entries.push(interruptEntry(MP_LINTSRC, MP_EXTINT, ISA_BUS_ID, 0, 0, LINT0));
  entries.push(interruptEntry(MP_LINTSRC, MP_NMI, ISA_BUS_ID, 0, ALL_LOCAL_APICS, LINT1));

  const length = MPC.SIZE + entries.reduce((sum, entry) => sum + entry.length, 0);
  const bytes = new Uint8Array(length);
  const view = viewOf(bytes);
  writeAscii(bytes, MPC.signature, MPC_SIGNATURE);
  view.setUint16(MPC.length, length, true);
  view.setUint8(MPC.spec, MP_SPEC_REVISION);
  writeAscii(bytes, MPC.oem, MPC_OEM_ID);
  writeAscii(bytes, MPC.productid, MPC_PRODUCT_ID);
  view.setUint16(MPC.oemcount, entries.length, true);
  view.setUint32(MPC.lapic, LAPIC_START, true);
  // oemptr, oemsize and the extended table length stay 0: there is no OEM or extended table.
  let offset = MPC.SIZE;
  for (const entry of entries) {
    bytes.set(entry, offset);
    offset += entry.length;
  }
  view.setUint8(MPC.checksum, checksumByte(bytes));
  return bytes;
}

function processorEntry(apicId: number): Uint8Array {
  const bytes = new Uint8Array(CPU_ENTRY.SIZE);
  const view = viewOf(bytes);
  view.setUint8(CPU_ENTRY.type, MP_PROCESSOR);
  view.setUint8(CPU_ENTRY.apicid, apicId);
  view.setUint8(CPU_ENTRY.apicver, LAPIC_VERSION);
  view.setUint8(CPU_ENTRY.cpuflag, CPU_ENABLED | (apicId === 0 ? CPU_BOOTPROCESSOR : 0));
  view.setUint32(CPU_ENTRY.cpufeature, CPU_SIGNATURE, true);
  view.setUint32(CPU_ENTRY.featureflag, CPU_FEATURE_APIC | CPU_FEATURE_FPU, true);
  return bytes;
}

function busEntry(busId: number, busType: string): Uint8Array {
  const bytes = new Uint8Array(BUS_ENTRY.SIZE);
  bytes[BUS_ENTRY.type] = MP_BUS;
  bytes[BUS_ENTRY.busid] = busId;
  writeAscii(bytes, BUS_ENTRY.bustype, busType);
  return bytes;
}

function ioapicEntry(ioapicId: number): Uint8Array {
  const bytes = new Uint8Array(IOAPIC_ENTRY.SIZE);
  const view = viewOf(bytes);
  view.setUint8(IOAPIC_ENTRY.type, MP_IOAPIC);
  view.setUint8(IOAPIC_ENTRY.apicid, ioapicId);
  view.setUint8(IOAPIC_ENTRY.apicver, IOAPIC_VERSION);
  view.setUint8(IOAPIC_ENTRY.flags, MPC_APIC_USABLE);
  view.setUint32(IOAPIC_ENTRY.apicaddr, IOAPIC_START, true);
  return bytes;
}

function interruptEntry(
  entryType: number, interruptType: number, sourceBus: number, sourceBusIrq: number, destinationApic: number, destinationPin: number,
): Uint8Array {
  const bytes = new Uint8Array(INTERRUPT_ENTRY.SIZE);
  const view = viewOf(bytes);
  view.setUint8(INTERRUPT_ENTRY.type, entryType);
  view.setUint8(INTERRUPT_ENTRY.irqtype, interruptType);
  view.setUint16(INTERRUPT_ENTRY.irqflag, MP_IRQFLAG_CONFORMS_TO_BUS, true);
  view.setUint8(INTERRUPT_ENTRY.srcbus, sourceBus);
  view.setUint8(INTERRUPT_ENTRY.srcbusirq, sourceBusIrq);
  view.setUint8(INTERRUPT_ENTRY.dstapic, destinationApic);
  view.setUint8(INTERRUPT_ENTRY.dstirq, destinationPin);
  return bytes;
}

/** The byte that makes all bytes (with the checksum field still 0) sum to 0 mod 256. */
function checksumByte(bytes: Uint8Array): number {
  const sum = bytes.reduce((total, byte) => total + byte, 0);
  return (0x100 - (sum & 0xff)) & 0xff;
}

function writeAscii(bytes: Uint8Array, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) bytes[offset + i] = text.charCodeAt(i);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
