// Entry point of a vCPU worker thread. It exposes a small control API over
// comlink (init, run) and otherwise lives inside VcpuRunLoop, blocked in
// KVM_RUN. comlink messages are only read between runs: the main thread makes
// a running vCPU return by writing its control word and kicking it.

import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import { IOCTL, SIZEOF } from '../shared/kvm-abi';
import { decodeRegs, Regs } from '../shared/kvm-structs';
import { check, native } from '../shared/native';
import type { DeviceRpcApi, VcpuStop, VcpuWorkerApi, VcpuWorkerConfig } from '../shared/vcpu-protocol';
import { Forwarder, VcpuRunLoop } from './run-loop';

if (!parentPort) throw new Error('the vCPU worker must run inside a worker_thread');

let loop: VcpuRunLoop | undefined;
let mode: VcpuWorkerConfig['handOff'] = 'spin-park';
let running = false;
let vcpuFd = -1;
let vcpuId = -1;

function forwarderFor(config: VcpuWorkerConfig): Forwarder | undefined {
  const port = config.devicePort;
  if (config.handOff === 'post-message') {
    if (!port) throw new Error('post-message hand-off needs a device port');
    // The request travels as a message; the answer comes back through the
    // channel's shared words, so the worker can wait for it synchronously.
    return (sequence) => port.postMessage(sequence);
  }
  if (config.handOff === 'comlink') {
    if (!port) throw new Error('comlink hand-off needs a device port');
    const device = Comlink.wrap<DeviceRpcApi>(nodeEndpoint(port));
    return async (sequence) => { await device.serve(config.vcpuId, sequence); };
  }
  return undefined;
}

const api: VcpuWorkerApi = {
  init(config: VcpuWorkerConfig): bigint {
    const addon = native();
    mode = config.handOff;
    vcpuFd = config.vcpuFd;
    vcpuId = config.vcpuId;
    loop = new VcpuRunLoop(addon, config, forwarderFor(config));
    return addon.currentThread();
  },
  async run(): Promise<VcpuStop> {
    if (!loop) throw new Error('run() before init()');
    running = true;
    try {
      if (mode === 'native') return loop.runNative();
      return mode === 'spin-park' || mode === 'park' ? loop.runSync() : loop.runAsync();
    } finally {
      running = false;
    }
  },
  registers(): Regs {
    if (!loop || running) throw new Error('registers() needs an initialised vCPU that is not running');
    const bytes = new Uint8Array(SIZEOF.kvm_regs);
    check('KVM_GET_REGS', native().ioctl(vcpuFd, IOCTL.KVM_GET_REGS, bytes), `vCPU ${vcpuId}`);
    return decodeRegs(bytes);
  },
};

Comlink.expose(api, nodeEndpoint(parentPort));
