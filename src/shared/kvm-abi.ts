// The KVM ABI tsvmm uses, in one place: ioctl request numbers, capability and
// exit-reason numbers, and the byte layout of every struct that crosses the
// ioctl boundary (x86_64, from <linux/kvm.h>). test/unit/kvm-abi.test.ts
// compiles a C program against the installed kvm.h and checks every number
// and offset here against it.

const KVMIO = 0xae;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(direction: number, nr: number, size: number): number {
  // Computed in floating point: direction << 30 overflows a 32-bit int.
  return direction * 0x40000000 + size * 0x10000 + KVMIO * 0x100 + nr;
}
const io = (nr: number) => ioc(0, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

/** Byte sizes of the structs whose size is encoded in a request number. */
export const SIZEOF = {
  kvm_regs: 144,
  kvm_sregs: 312,
  kvm_fpu: 416,
  kvm_lapic_state: 1024,
  kvm_msrs: 8,
  kvm_msr_entry: 16,
  kvm_cpuid2: 8,
  kvm_cpuid_entry2: 40,
  kvm_userspace_memory_region: 32,
  kvm_irqfd: 32,
  kvm_ioeventfd: 64,
  kvm_pit_config: 64,
  kvm_enable_cap: 104,
  kvm_irq_level: 8,
  kvm_mp_state: 4,
  kvm_segment: 24,
  kvm_dtable: 16,
  kvm_msi: 32,
  kvm_irq_routing: 8,
  kvm_irq_routing_entry: 48,
  kvm_interrupt: 4,
  kvm_msr_list: 4,
  kvm_xsave: 4096,
  kvm_xcrs: 392,
  kvm_debugregs: 128,
  kvm_vcpu_events: 64,
  kvm_irqchip: 520,
  kvm_pit_state2: 112,
  kvm_clock_data: 48,
} as const;

/** ioctl request numbers, named as in <linux/kvm.h>. */
export const IOCTL = {
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, SIZEOF.kvm_cpuid2),
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, SIZEOF.kvm_userspace_memory_region),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  KVM_CREATE_IRQCHIP: io(0x60),
  KVM_SET_GSI_ROUTING: iow(0x6a, SIZEOF.kvm_irq_routing),
  KVM_IRQFD: iow(0x76, SIZEOF.kvm_irqfd),
  KVM_IOEVENTFD: iow(0x79, SIZEOF.kvm_ioeventfd),
  KVM_IRQ_LINE: iow(0x61, SIZEOF.kvm_irq_level),
  KVM_CREATE_PIT2: iow(0x77, SIZEOF.kvm_pit_config),
  KVM_ENABLE_CAP: iow(0xa3, SIZEOF.kvm_enable_cap),
  KVM_SIGNAL_MSI: iow(0xa5, SIZEOF.kvm_msi),
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, SIZEOF.kvm_regs),
  KVM_SET_REGS: iow(0x82, SIZEOF.kvm_regs),
  KVM_GET_SREGS: ior(0x83, SIZEOF.kvm_sregs),
  KVM_SET_SREGS: iow(0x84, SIZEOF.kvm_sregs),
  KVM_INTERRUPT: iow(0x86, SIZEOF.kvm_interrupt),
  KVM_GET_MSRS: iowr(0x88, SIZEOF.kvm_msrs),
  KVM_SET_MSRS: iow(0x89, SIZEOF.kvm_msrs),
  KVM_GET_FPU: ior(0x8c, SIZEOF.kvm_fpu),
  KVM_SET_FPU: iow(0x8d, SIZEOF.kvm_fpu),
  KVM_GET_LAPIC: ior(0x8e, SIZEOF.kvm_lapic_state),
  KVM_SET_LAPIC: iow(0x8f, SIZEOF.kvm_lapic_state),
  KVM_SET_CPUID2: iow(0x90, SIZEOF.kvm_cpuid2),
  KVM_GET_MP_STATE: ior(0x98, SIZEOF.kvm_mp_state),
  KVM_SET_MP_STATE: iow(0x99, SIZEOF.kvm_mp_state),
  KVM_GET_MSR_INDEX_LIST: iowr(0x02, SIZEOF.kvm_msr_list),
  KVM_GET_XSAVE: ior(0xa4, SIZEOF.kvm_xsave),
  KVM_SET_XSAVE: iow(0xa5, SIZEOF.kvm_xsave),
  KVM_GET_XSAVE2: ior(0xcf, SIZEOF.kvm_xsave),
  KVM_GET_XCRS: ior(0xa6, SIZEOF.kvm_xcrs),
  KVM_SET_XCRS: iow(0xa7, SIZEOF.kvm_xcrs),
  KVM_GET_DEBUGREGS: ior(0xa1, SIZEOF.kvm_debugregs),
  KVM_SET_DEBUGREGS: iow(0xa2, SIZEOF.kvm_debugregs),
  KVM_GET_VCPU_EVENTS: ior(0x9f, SIZEOF.kvm_vcpu_events),
  KVM_SET_VCPU_EVENTS: iow(0xa0, SIZEOF.kvm_vcpu_events),
  KVM_GET_TSC_KHZ: io(0xa3),
  KVM_SET_TSC_KHZ: io(0xa2),
  KVM_GET_IRQCHIP: iowr(0x62, SIZEOF.kvm_irqchip),
  KVM_SET_IRQCHIP: ior(0x63, SIZEOF.kvm_irqchip),
  KVM_GET_PIT2: ior(0x9f, SIZEOF.kvm_pit_state2),
  KVM_SET_PIT2: iow(0xa0, SIZEOF.kvm_pit_state2),
  KVM_GET_CLOCK: ior(0x7c, SIZEOF.kvm_clock_data),
  KVM_SET_CLOCK: iow(0x7b, SIZEOF.kvm_clock_data),
} as const;
export type IoctlName = keyof typeof IOCTL;

/** KVM_CHECK_EXTENSION / KVM_ENABLE_CAP numbers. */
export const CAP = {
  KVM_CAP_IRQCHIP: 0,
  KVM_CAP_USER_MEMORY: 3,
  KVM_CAP_SET_TSS_ADDR: 4,
  KVM_CAP_EXT_CPUID: 7,
  KVM_CAP_NR_VCPUS: 9,
  KVM_CAP_IRQFD: 32,
  KVM_CAP_PIT2: 33,
  KVM_CAP_IOEVENTFD: 36,
  KVM_CAP_IOEVENTFD_ANY_LENGTH: 122,
  KVM_CAP_MAX_VCPUS: 66,
  KVM_CAP_SPLIT_IRQCHIP: 121,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_SIGNAL_MSI: 77,
  KVM_CAP_READONLY_MEM: 81,
  KVM_CAP_VCPU_EVENTS: 41,
  KVM_CAP_DEBUGREGS: 50,
  KVM_CAP_XSAVE: 55,
  KVM_CAP_XCRS: 56,
  KVM_CAP_GET_TSC_KHZ: 61,
  KVM_CAP_XSAVE2: 208,
} as const;

export const KVM_API_VERSION = 12;

/** kvm_run.exit_reason values. */
export const EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  WATCHDOG: 21,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  HYPERV: 27,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32,
  X86_BUS_LOCK: 33,
  NOTIFY: 37,
} as const;

const EXIT_NAMES = new Map<number, string>(Object.entries(EXIT).map(([name, value]) => [value, name]));
/** "KVM_EXIT_SHUTDOWN" for 8; "KVM_EXIT_<n>" for numbers tsvmm does not know. */
export function exitReasonName(reason: number): string {
  return `KVM_EXIT_${EXIT_NAMES.get(reason) ?? reason}`;
}

export const IO_DIRECTION_OUT = 1;

/** KVM_EXIT_INTERNAL_ERROR sub-errors. */
export const INTERNAL_ERROR = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const;
export const INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1n;

/** KVM_EXIT_SYSTEM_EVENT types. */
export const SYSTEM_EVENT = {
  SHUTDOWN: 1,
  RESET: 2,
  CRASH: 3,
  WAKEUP: 4,
  SUSPEND: 5,
} as const;

/** Byte offsets inside the mmap'ed struct kvm_run. */
export const KVM_RUN = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  ready_for_interrupt_injection: 12,
  if_flag: 13,
  flags: 14,
  cr8: 16,
  apic_base: 24,
  // union at 32
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  fail_entry_reason: 32,
  fail_entry_cpu: 40,
  internal_suberror: 32,
  internal_ndata: 36,
  internal_data: 40,
  emulation_flags: 40,
  emulation_insn_size: 48,
  emulation_insn_bytes: 49,
  system_event_type: 32,
  system_event_ndata: 36,
  system_event_data: 40,
  hw_exit_reason: 32,
  eoi_vector: 32,
} as const;

/** struct kvm_regs: 18 u64 in this order. */
export const REGS_ORDER = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const;
export type RegName = (typeof REGS_ORDER)[number];

/** struct kvm_segment field offsets. */
export const SEGMENT = {
  base: 0, limit: 8, selector: 12, type: 14, present: 15, dpl: 16, db: 17, s: 18, l: 19,
  g: 20, avl: 21, unusable: 22,
} as const;

/** struct kvm_sregs field offsets. */
export const SREGS = {
  cs: 0, ds: 24, es: 48, fs: 72, gs: 96, ss: 120, tr: 144, ldt: 168,
  gdt: 192, idt: 208,
  cr0: 224, cr2: 232, cr3: 240, cr4: 248, cr8: 256, efer: 264, apic_base: 272,
  interrupt_bitmap: 280,
} as const;

/** struct kvm_dtable field offsets. */
export const DTABLE = { base: 0, limit: 8 } as const;

/** struct kvm_fpu field offsets. */
export const FPU = {
  fpr: 0, fcw: 128, fsw: 130, ftwx: 132, last_opcode: 134, last_ip: 136, last_dp: 144,
  xmm: 152, mxcsr: 408,
} as const;

/** struct kvm_cpuid_entry2 field offsets. */
export const CPUID_ENTRY = {
  function: 0, index: 4, flags: 8, eax: 12, ebx: 16, ecx: 20, edx: 24,
} as const;

/** struct kvm_userspace_memory_region field offsets. */
export const MEMORY_REGION = {
  slot: 0, flags: 4, guest_phys_addr: 8, memory_size: 16, userspace_addr: 24,
} as const;

/** struct kvm_irqfd field offsets. */
export const IRQFD = { fd: 0, gsi: 4, flags: 8, resamplefd: 12 } as const;
/** kvm_irqfd.flags: resamplefd is valid; the GSI is a level line lowered at the guest's EOI. */
export const KVM_IRQFD_FLAG_RESAMPLE = 1 << 1;

/** struct kvm_ioeventfd field offsets (pad runs to the end: 36 bytes that must be zero). */
export const IOEVENTFD = { datamatch: 0, addr: 8, len: 16, fd: 20, flags: 24, pad: 28 } as const;
/** kvm_ioeventfd.flags bits. */
export const KVM_IOEVENTFD_FLAG = { DATAMATCH: 1 << 0, PIO: 1 << 1, DEASSIGN: 1 << 2 } as const;

/** struct kvm_enable_cap field offsets. */
export const ENABLE_CAP = { cap: 0, flags: 4, args: 8 } as const;

/** struct kvm_irq_routing_entry field offsets (the irqchip and MSI members of its union). */
export const IRQ_ROUTING_ENTRY = {
  gsi: 0, type: 4, flags: 8, irqchip_irqchip: 16, irqchip_pin: 20, msi_address_lo: 16, msi_address_hi: 20, msi_data: 24,
} as const;
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
export const KVM_IRQ_ROUTING_MSI = 2;
/** kvm_irq_routing_irqchip.irqchip: the in-kernel PIC master, slave and IOAPIC. */
export const KVM_IRQCHIP = { PIC_MASTER: 0, PIC_SLAVE: 1, IOAPIC: 2 } as const;

/** kvm_pit_config.flags: KVM also emulates port 0x61 (speaker and PIT channel 2 gate/output). */
export const KVM_PIT_SPEAKER_DUMMY = 1;

/** struct kvm_msi field offsets. */
export const MSI = { address_lo: 0, address_hi: 4, data: 8, flags: 12, devid: 16 } as const;

/** struct kvm_irq_level field offsets. */
export const IRQ_LEVEL = { irq: 0, level: 4 } as const;

/** struct kvm_msr_list: a count, then that many u32 MSR indices. */
export const MSR_LIST = { nmsrs: 0, indices: 4 } as const;
/** struct kvm_msr_entry field offsets (after struct kvm_msrs' 8-byte header). */
export const MSR_ENTRY = { index: 0, data: 8 } as const;
/** struct kvm_irqchip: which chip, then its state (the union, opaque to tsvmm). */
export const IRQCHIP_STATE = { chip_id: 0, chip: 8 } as const;
/**
 * struct kvm_vcpu_events field offsets: the interrupt being injected (its
 * `injected` byte, then its vector) and the flags word that says which
 * fields KVM_SET_VCPU_EVENTS takes.
 */
export const VCPU_EVENTS = { interruptInjected: 8, interruptVector: 9, flags: 20 } as const;
/** kvm_vcpu_events.flags bits KVM_GET_VCPU_EVENTS leaves clear although it fills the fields in. */
export const KVM_VCPUEVENT_VALID = { NMI_PENDING: 0x1, SIPI_VECTOR: 0x2 } as const;
/** struct kvm_clock_data field offsets. */
export const CLOCK_DATA = { clock: 0, flags: 8 } as const;

/** kvm_userspace_memory_region.flags: guest writes to the slot exit as MMIO writes (KVM_CAP_READONLY_MEM). */
export const KVM_MEM_READONLY = 0x2;

/** Memory-mapping constants from <sys/mman.h> and <fcntl.h> (Linux x86_64). */
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const O_RDWR = 0x2;
export const EFD_NONBLOCK = 0x800;
