// Shapes what KVM_GET_SUPPORTED_CPUID reports into the CPUID one vCPU
// sees: its own APIC id and the VM's topology, the hypervisor bit, and no
// host-only power features. Follows crosvm's cpuid.rs adjust_cpuid with its
// default configuration (no host topology mirroring, SMT allowed, in-kernel
// irqchip with x2APIC and TSC-deadline); leaves not listed in LEAF_SHAPERS
// (leaf 7, perfmon leaf 0xA, the 0x4000_0000 hypervisor leaves, ...) are
// passed through as KVM reports them, as crosvm does.
// Bit positions: Intel SDM Vol. 2A, CPUID instruction.

import { CpuidEntry } from '../../shared/kvm-structs';
import { TsvmmError, TsvmmErrorOptions } from '../../shared/errors';

/** Leaf 1 EBX[15:8]: CLFLUSH line size in 8-byte units; 8 means 64-byte lines. */
const EBX_CLFLUSH_LINE_UNITS = 8;
const EBX_CLFLUSH_SHIFT = 8;
/** Leaf 1 EBX[23:16]: addressable logical processor ids in the package (valid when HTT is set). */
const EBX_LOGICAL_COUNT_SHIFT = 16;
/** Leaf 1 EBX[31:24]: initial APIC id of this processor. */
const EBX_APIC_ID_SHIFT = 24;
/** Leaf 1 ECX bit 21: x2APIC supported (KVM's in-kernel LAPIC emulates it). */
const ECX_X2APIC = 1 << 21;
/** Leaf 1 ECX bit 24: LAPIC timer supports TSC-deadline mode (KVM's in-kernel LAPIC does). */
const ECX_TSC_DEADLINE = 1 << 24;
/** Leaf 1 ECX bit 31: running under a hypervisor. */
const ECX_HYPERVISOR = 1 << 31;
/** Leaf 1 EDX bit 28: HTT, the package has more than one logical processor. */
const EDX_HTT = 1 << 28;

/** Leaf 4 EAX[31:26]: addressable core ids in the package, minus one. */
const EAX_CORES_SHIFT = 26;
const EAX_CORES_MASK = 0xfc00_0000;

/** Leaf 6 ECX bit 3: Energy Performance Bias; no frequency selection inside a VM. */
const ECX_EPB = 1 << 3;

/** Leaf 0xB/0x1F ECX[15:8]: level type of this subleaf. */
const ECX_LEVEL_TYPE_SHIFT = 8;
/** Level type 1: SMT (threads of a core). */
const LEVEL_TYPE_SMT = 1;
/** Level type 2: core (cores of the package). */
const LEVEL_TYPE_CORE = 2;
/** Leaf 0xB/0x1F EBX[15:0]: logical processors at this level. */
const EBX_LEVEL_COUNT_MASK = 0xffff;
/** Subleaf numbers of the two topology levels tsvmm describes. */
const SMT_SUBLEAF = 0;
const CORE_SUBLEAF = 1;

/** The xAPIC id and the leaf 1 count field are 8 bits wide. */
const MAX_VCPUS = 255;

/** Leaf numbers shaped here. */
const LEAF_FEATURES = 0x1;
const LEAF_CACHE_PARAMETERS = 0x4;
const LEAF_THERMAL_POWER = 0x6;
const LEAF_EXTENDED_TOPOLOGY = 0xb;
const LEAF_EXTENDED_TOPOLOGY_V2 = 0x1f;

export interface VcpuTopology {
  /** This vCPU's index, which is also its APIC id. */
  vcpuId: number;
  /** vCPUs in the VM. */
  vcpuCount: number;
}

export class CpuidError extends TsvmmError {
  constructor(message: string, options?: TsvmmErrorOptions) {
    super('host', message, options);
  }
}

type LeafShaper = (entry: CpuidEntry, topology: VcpuTopology) => CpuidEntry;

/** Bits needed to number `count` items: ceil(log2(count)), 0 for one item. */
function bitsFor(count: number): number {
  return 32 - Math.clz32(count - 1);
}

/**
 * Cores per package as crosvm counts them with SMT allowed: an even count is
 * cores of two threads each; an odd count is one core holding every thread.
 */
function coresPerPackage(vcpuCount: number): number {
  return vcpuCount % 2 === 0 ? vcpuCount / 2 : 1;
}

/** Leaf 1: APIC id, CLFLUSH size, logical count with HTT, hypervisor, x2APIC and TSC-deadline bits. */
function shapeFeatures(entry: CpuidEntry, { vcpuId, vcpuCount }: VcpuTopology): CpuidEntry {
  let ebx = (vcpuId << EBX_APIC_ID_SHIFT) | (EBX_CLFLUSH_LINE_UNITS << EBX_CLFLUSH_SHIFT);
  let edx = entry.edx;
  if (vcpuCount > 1) {
    ebx |= vcpuCount << EBX_LOGICAL_COUNT_SHIFT;
    edx |= EDX_HTT;
  }
  return {
    ...entry,
    ebx: ebx >>> 0,
    ecx: (entry.ecx | ECX_HYPERVISOR | ECX_X2APIC | ECX_TSC_DEADLINE) >>> 0,
    edx: edx >>> 0,
  };
}

/** Leaf 4 (every cache subleaf): the cores-per-package field matches the VM, not the host. */
function shapeCacheParameters(entry: CpuidEntry, { vcpuCount }: VcpuTopology): CpuidEntry {
  let eax = entry.eax & ~EAX_CORES_MASK;
  if (vcpuCount > 1) eax |= (coresPerPackage(vcpuCount) - 1) << EAX_CORES_SHIFT;
  return { ...entry, eax: eax >>> 0 };
}

/** Leaf 6: no energy-performance-bias control in a guest. */
function shapeThermalPower(entry: CpuidEntry): CpuidEntry {
  return { ...entry, ecx: (entry.ecx & ~ECX_EPB) >>> 0 };
}

/**
 * Leaves 0xB and 0x1F: the x2APIC id (EDX) on every subleaf, an SMT level at
 * subleaf 0, a core level at subleaf 1, and an invalid level after that.
 */
function shapeExtendedTopology(entry: CpuidEntry, { vcpuId, vcpuCount }: VcpuTopology): CpuidEntry {
  const edx = vcpuId >>> 0;
  if (entry.index === SMT_SUBLEAF) {
    let shift: number;
    let threads: number;
    if (vcpuCount === 1) {
      [shift, threads] = [0, 1];
    } else if (vcpuCount % 2 === 0) {
      [shift, threads] = [1, 2];
    } else {
      [shift, threads] = [bitsFor(vcpuCount), vcpuCount];
    }
    return { ...entry, eax: shift, ebx: threads, ecx: (LEVEL_TYPE_SMT << ECX_LEVEL_TYPE_SHIFT) | entry.index, edx };
  }
  if (entry.index === CORE_SUBLEAF) {
    return {
      ...entry,
      eax: bitsFor(vcpuCount),
      ebx: vcpuCount & EBX_LEVEL_COUNT_MASK,
      ecx: (LEVEL_TYPE_CORE << ECX_LEVEL_TYPE_SHIFT) | entry.index,
      edx,
    };
  }
  return { ...entry, eax: 0, ebx: 0, ecx: 0, edx };
}

/** The patch table: leaf number -> how that leaf is reshaped for one vCPU. */
const LEAF_SHAPERS: ReadonlyMap<number, LeafShaper> = new Map<number, LeafShaper>([
  [LEAF_FEATURES, shapeFeatures],
  [LEAF_CACHE_PARAMETERS, shapeCacheParameters],
  [LEAF_THERMAL_POWER, shapeThermalPower],
  [LEAF_EXTENDED_TOPOLOGY, shapeExtendedTopology],
  [LEAF_EXTENDED_TOPOLOGY_V2, shapeExtendedTopology],
]);

/**
 * The CPUID entries for vCPU `vcpuId` of `vcpuCount`, as a new array in the
 * order of `supported` (the output of KVM_GET_SUPPORTED_CPUID, which is not
 * modified). Leaf 1 subleaf fields and the topology leaves are rewritten as
 * crosvm's adjust_cpuid does; other leaves are copied unchanged.
 */
export function shapeCpuid(supported: readonly CpuidEntry[], topology: VcpuTopology): CpuidEntry[] {
  const { vcpuId, vcpuCount } = topology;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > MAX_VCPUS) {
    throw new CpuidError(`vCPU count ${vcpuCount} is outside 1..${MAX_VCPUS}; the 8-bit xAPIC id cannot number more`);
  }
  if (!Number.isInteger(vcpuId) || vcpuId < 0 || vcpuId >= vcpuCount) {
    throw new CpuidError(`vCPU id ${vcpuId} is outside 0..${vcpuCount - 1}; pass the vCPU's index in the VM`);
  }
  return supported.map((entry) => {
    const shape = LEAF_SHAPERS.get(entry.function);
    return shape ? shape({ ...entry }, topology) : { ...entry };
  });
}
