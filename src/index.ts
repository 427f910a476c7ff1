// tsvmm as a library: `import { Machine } from 'tsvmm'`. Loading it has no
// side effects (no argument parsing, no workers, no exit); the tsvmm command
// is dist/main.js, behind package.json's `bin`.

export { Machine } from './main/vmm/machine';
export type { MachineHooks, MachineState, ExtraDevice } from './main/vmm/machine';
export { DEFAULT_VM_CONFIG, resolveVmConfig } from './main/vmm/vm-config';
export type { VmConfig, DeviceConfig, SerialConfig, BootProtocolChoice, IrqchipChoice } from './main/vmm/vm-config';
export { describeVmExit } from './main/vmm/vm-exit';
export type { VmExit, VmExitKind, StopCause, GuestLocation } from './main/vmm/vm-exit';
export { TsvmmError } from './shared/errors';
export type { ErrorKind, TsvmmErrorOptions } from './shared/errors';
export type { BusDevice } from './devices/bus/bus-device';
export type { Regs } from './shared/kvm-structs';
export type { VcpuStatValues } from './shared/vcpu-stats';
