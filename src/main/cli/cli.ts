// The tsvmm command: parse arguments, build the machine, wire the console and
// signals, run, report how the guest ended. Every failure a user can cause
// becomes one line on stderr and an exit code, never a stack trace.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { TsvmmError, asTsvmmError } from '../../shared/errors';
import { parseCli, USAGE, CliOptions, UsageError } from './args';
import { vmConfigFromCli } from './config-file';
import { ConsoleInput, OutputSink } from './console';
import { readInputFile } from './input-files';
import { MAX_FIRMWARE_SIZE } from '../layout';
import { EXIT_CODE, exitCodeForError, exitCodeForVmExit } from './exit-codes';
import { VmExit, describeVmExit } from '../vmm/vm-exit';
import { Machine, MachineHooks } from '../vmm/machine';
import { snapshotToRestore } from './restore';
import type { ApiServer } from '../api/server';
import { remote } from './remote';
import { RunRecord, statsJson, statsText } from './stats-report';
import { CliLog, openLog } from './log';

/** The bundled demo guest, built by `npm run build` from guests/hello. */
function demoGuestPath(): string {
  return path.resolve(__dirname, '..', '..', '..', 'guests', 'out', 'hello.elf');
}

/** A --kernel or --initrd file: a regular file no larger than the guest RAM (src/main/cli/input-files.ts). */
function readInput(what: string, file: string, memMiB: number): Uint8Array {
  return readInputFile(what, file, memMiB * 1024 * 1024);
}

/** --stats-file: opened before the VM is built, so a bad path is one line before anything runs. */
function openStatsFile(file: string): number {
  try {
    return fs.openSync(file, 'w', 0o666);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot open --stats-file ${file}: ${code}; give a path to a writable file`, { cause: error });
  }
}

/**
 * Signals that would end the process: each stops the VM cleanly (terminal
 * restored, "stopped by" said). SIGUSR1 is among them because Node would
 * otherwise open its inspector on it, an unauthenticated debugger port.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM'] as const;

/**
 * Runs the CLI; resolves with the process exit code. `startedWorkers` are
 * vCPU workers src/main.ts started ahead; they end with the process.
 */
export async function main(argv: string[], startedWorkers: Worker[] = []): Promise<number> {
  if (argv[0] === 'remote') return remote(argv.slice(1));
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
  /** The virtio-console's terminal output: COM1's sink when that is stdout too, else a sink of its own. */
  let consoleOutput: OutputSink | undefined;
  /** Port 0x402's log file (--debugcon file:PATH). */
  let debugcon: OutputSink | undefined;
  let input: ConsoleInput | undefined;
  let machine: Machine | undefined;
  let api: ApiServer | undefined;
  let statsFd: number | undefined;
  let log: CliLog | undefined;
  const removeSignalHandlers: Array<() => void> = [];
  try {
    const restoring = options.restore === undefined ? undefined : snapshotToRestore({ ...options, restore: options.restore });
    const config = restoring?.config ?? vmConfigFromCli(options);
    if (options.statsFile !== undefined) statsFd = openStatsFile(options.statsFile);
    if (options.logLevel !== undefined) log = openLog(options.logLevel, options.logFile);
    const vmLog = log;
    const firmware = config.bios === undefined || restoring ? undefined
      : readInputFile('firmware image', config.bios, MAX_FIRMWARE_SIZE, `the ${MAX_FIRMWARE_SIZE / (1024 * 1024)} MiB a firmware image may be; pass a firmware image such as /usr/share/seabios/bios.bin`);
    const kernel = firmware || restoring ? undefined : readInput('kernel', config.kernel ?? demoGuestPath(), config.memoryMiB);
    const initrd = config.initrd && !restoring ? readInput('initrd', config.initrd, config.memoryMiB) : undefined;
    // A write error (EPIPE, ENOSPC, ...) ends the VM: its console is gone. The first one is kept,
    // because it may come after the guest ended (the last bytes are written at exit).
    let outputError: VmExit | undefined;
    const onError = (error: TsvmmError) => {
      outputError ??= { kind: 'stopped', cause: { by: 'output-error', message: error.message } };
      machine?.end(outputError);
    };
    output = config.serial.kind === 'null' ? undefined : OutputSink.open(config.serial, { onError });
    const sink = output;
    if (config.devices.some((device) => device.kind === 'console' && device.path === undefined)) {
      consoleOutput = config.serial.kind === 'stdio' ? output : OutputSink.open({ kind: 'stdio' }, { onError });
    }
    const hvc0 = consoleOutput;
    debugcon = config.debugcon?.kind === 'file' ? OutputSink.open(config.debugcon, { onError }) : undefined;
    const debugLog = debugcon;
    const build = (hooks: MachineHooks) => (restoring ? Machine.restore(restoring, hooks) : Machine.create(config, hooks));
    machine = await build({
      kernel,
      initrd,
      firmware,
      debugconOutput: debugLog ? (bytes) => debugLog.write(bytes) : undefined,
      serialOutput: sink ? (bytes) => sink.write(bytes) : undefined,
      consoleOutput: hvc0 ? (bytes) => hvc0.write(bytes) : undefined,
      startedWorkers,
      kvmDevice: process.env.TSVMM_KVM_DEVICE,
      log: vmLog,
      warn: vmLog ? (message) => vmLog.write('warn', message) : undefined,
    });
    const running = machine;
    if (options.apiSocket !== undefined) {
      // node:http is loaded only for a VM that serves the API: it costs start-up time.
      const { ApiServer } = require('../api/server') as typeof import('../api/server');
      api = await ApiServer.open(options.apiSocket, running);
    }
    for (const signal of STOP_SIGNALS) {
      const handler = () => running.end({ kind: 'stopped', cause: { by: 'signal', signal } });
      process.on(signal, handler);
      removeSignalHandlers.push(() => process.off(signal, handler));
    }
    // The terminal's keys go to the guest's hvc0 when the virtio-console is on the terminal
    // (--console tty), else to COM1 when COM1 is on stdio.
    const consoleOnTerminal = config.devices.some((device) => device.kind === 'console' && device.path === undefined);
    if (consoleOnTerminal || config.serial.kind === 'stdio') {
      input = new ConsoleInput(consoleOnTerminal ? running.consoleInputQueue() : running, () => running.end({ kind: 'stopped', cause: { by: 'console' } }));
      input.start();
    }
    const guestExit = await machine.run();
    const endedNs = Number(process.hrtime.bigint());
    await output?.flush();
    if (consoleOutput !== output) await consoleOutput?.flush();
    await debugcon?.flush();
    // Output lost after a clean end is still a failure; a guest fault says more and stands.
    const exit = outputError && exitCodeForVmExit(guestExit) === 0 ? outputError : guestExit;
    report(exit, options, machine, endedNs, statsFd);
    log?.write('info', `exit: ${describeVmExit(exit).summary} (exit code ${exitCodeForVmExit(exit)})`);
    return exitCodeForVmExit(exit);
  } catch (error) {
    await output?.flush();
    await debugcon?.flush();
    const failure = asTsvmmError(error);
    if (failure.kind === 'internal' && !(error instanceof TsvmmError)) {
      // Not an error tsvmm raised on purpose: a bug, so keep the stack.
      process.stderr.write(`tsvmm: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
    } else {
      process.stderr.write(`tsvmm: ${failure.kind === 'internal' ? 'internal error: ' : ''}${failure.message}\n`);
    }
    return exitCodeForError(failure.kind);
  } finally {
    input?.dispose();
    for (const remove of removeSignalHandlers) remove();
    await api?.close();
    await machine?.close();
    output?.close();
    if (consoleOutput !== output) consoleOutput?.close();
    debugcon?.close();
    if (statsFd !== undefined) fs.closeSync(statsFd);
    log?.close();
  }
}

function report(exit: VmExit, options: CliOptions, machine: Machine, endedNs: number, statsFd: number | undefined): void {
  const { summary, detail } = describeVmExit(exit);
  const exitCode = exitCodeForVmExit(exit);
  if (exitCode !== 0 || detail) {
    process.stderr.write(`tsvmm: ${summary}\n`);
    if (detail) process.stderr.write(`  ${detail}\n`);
  }
  if (options.stats === 'off') return;
  const nowNs = Number(process.hrtime.bigint());
  const record: RunRecord = {
    exit,
    exitCode,
    summary,
    vcpus: machine.stats(),
    handOffWaits: machine.handOffWaits(),
    deviceThread: machine.deviceStats,
    // performance.now() counts from process start on the main thread.
    processStartNs: nowNs - performance.now() * 1e6,
    endedNs,
    nowNs,
  };
  if (options.stats === 'text') process.stderr.write(statsText(record));
  else if (statsFd === undefined) process.stderr.write(statsJson(record));
  else {
    try {
      fs.writeSync(statsFd, statsJson(record));
    } catch (error) {
      throw new TsvmmError('host', `cannot write --stats-file ${options.statsFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
    }
  }
}
