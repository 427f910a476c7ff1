// The tsvmm command: parse arguments, build the machine, wire the console and
// signals, run, report how the guest ended. Every failure a user can cause
// becomes one line on stderr and an exit code, never a stack trace.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { BootConfigError } from '../arch/configure';
import { KvmError } from '../../shared/native';
import { parseCli, USAGE, UsageError, CliOptions } from './args';
import { ConsoleInput, OutputSink } from './console';
import { readInputFile } from './input-files';
import { EXIT_CODE, GuestExit } from '../vmm/vm-exit';
import { KvmUnavailableError } from '../kvm/kvm';
import { Machine, MachineConfigError } from '../vmm/machine';

const MIB = 1024 * 1024;

/** The bundled demo guest, built by `npm run build` from guests/hello. */
export function demoGuestPath(): string {
  return path.resolve(__dirname, '..', '..', '..', 'guests', 'out', 'hello.elf');
}

/** A --kernel or --initrd file: a regular file no larger than the guest RAM (src/main/cli/input-files.ts). */
function readInput(what: string, file: string, memMiB: number): Uint8Array {
  return readInputFile(what, file, memMiB * 1024 * 1024);
}

/** Errors whose message is already the one line a user needs. */
function isUserFacing(error: unknown): error is Error {
  if (error instanceof UsageError || error instanceof KvmUnavailableError || error instanceof MachineConfigError
    || error instanceof BootConfigError) return true;
  // The boot-table and loader modules each have their own error class; all of
  // them describe bad input (a kernel, initrd or size that does not fit).
  const name = (error as Error | undefined)?.name ?? '';
  return /^(Elf|BzImage|Cmdline|Initrd|E820|MpTable|Pvh|SetupData|MemoryMap|BootParams|GuestMemory)Error$/.test(name);
}

/**
 * Runs the CLI; resolves with the process exit code. `startedWorkers` are
 * vCPU workers src/main.ts started ahead; they end with the process.
 */
export async function main(argv: string[], startedWorkers: Worker[] = []): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCli(argv);
  } catch (error) {
    process.stderr.write(`tsvmm: ${(error as Error).message}\n`);
    return EXIT_CODE.usage;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.version) {
    process.stdout.write(`tsvmm ${require('../../../package.json').version}\n`);
    return 0;
  }

  let output: OutputSink | undefined;
  let input: ConsoleInput | undefined;
  let machine: Machine | undefined;
  const removeSignalHandlers: Array<() => void> = [];
  try {
    const kernelPath = options.kernel ?? demoGuestPath();
    const kernel = readInput('kernel', kernelPath, options.memMiB);
    const initrd = options.initrd ? readInput('initrd', options.initrd, options.memMiB) : undefined;
    // A write error (EPIPE, ENOSPC, ...) ends the VM: its console is gone.
    const onError = (error: Error) => machine?.end({ code: EXIT_CODE.vmmFailure, reason: `stopped: ${error.message}` });
    output = options.serial.kind === 'null' ? undefined : OutputSink.open(options.serial, { onError });
    const sink = output;
    machine = await Machine.create({
      kernel,
      initrd,
      cmdline: options.cmdline,
      cpus: options.cpus,
      memBytes: options.memMiB * MIB,
      bootProtocol: options.bootProtocol,
      splitIrqchip: options.splitIrqchip,
      handOff: options.handOff,
      spinLimit: options.spinLimit,
      serialOutput: sink ? (bytes) => sink.write(bytes) : undefined,
      rtcBase: options.rtcBase,
      startedWorkers,
      kvmDevice: process.env.TSVMM_KVM_DEVICE,
    });
    const running = machine;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const handler = () => running.end({ code: signal === 'SIGINT' ? EXIT_CODE.interrupted : 143, reason: `stopped by ${signal}` });
      process.on(signal, handler);
      removeSignalHandlers.push(() => process.off(signal, handler));
    }
    if (options.serial.kind === 'stdio') {
      input = new ConsoleInput((bytes) => running.sendInput(bytes),
        () => running.end({ code: 0, reason: 'quit from the console (Ctrl-A x)' }));
      input.start();
    }
    const exit = await machine.run();
    await output?.flush();
    report(exit, options, machine);
    return exit.code;
  } catch (error) {
    await output?.flush();
    if (isUserFacing(error)) {
      process.stderr.write(`tsvmm: ${error.message}\n`);
      return error instanceof KvmUnavailableError ? EXIT_CODE.vmmFailure : EXIT_CODE.usage;
    }
    if (error instanceof KvmError) {
      process.stderr.write(`tsvmm: ${error.message}\n`);
      return EXIT_CODE.vmmFailure;
    }
    process.stderr.write(`tsvmm: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
    return EXIT_CODE.vmmFailure;
  } finally {
    input?.dispose();
    for (const remove of removeSignalHandlers) remove();
    await machine?.close();
    output?.close();
  }
}

function report(exit: GuestExit, options: CliOptions, machine: Machine): void {
  if (exit.code !== 0 || exit.diagnostic) {
    process.stderr.write(`tsvmm: ${exit.reason}\n`);
    if (exit.diagnostic) process.stderr.write(`  ${exit.diagnostic}\n`);
  }
  if (options.stats) {
    const lines = machine.stats().map((stats, id) => `vcpu${id}: ${Object.entries(stats).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    const device = machine.deviceStats;
    // performance.now() counts from process start on the main thread.
    const processStartNs = Number(process.hrtime.bigint()) - performance.now() * 1e6;
    const firstRun = machine.stats()[0]?.firstRunNs ?? 0;
    const startup = firstRun > 0 ? `\nstart-up: first guest instruction ${((firstRun - processStartNs) / 1e6).toFixed(1)} ms after process start` : '';
    process.stderr.write(`${lines.join('\n')}\ndevice thread: served=${device.served} parks=${device.parks}${startup}\n`);
  }
}
