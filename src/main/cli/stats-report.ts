// --stats: the counters and times of a run, as lines for a person or as one
// JSON object for a program (--stats=json, --stats-file). Times are durations
// from process start, never raw clock readings, which mean nothing outside
// the process that took them.

import { HandOffHistogram, VcpuStatValues, handOffHistogramJson, handOffHistogramText } from '../../shared/vcpu-stats';
import type { VmExit } from '../vmm/vm-exit';

export type StatsFormat = 'text' | 'json';

/** What a run leaves to report; every time is process.hrtime in ns. */
export interface RunRecord {
  exit: VmExit;
  exitCode: number;
  summary: string;
  vcpus: VcpuStatValues[];
  /** Per vCPU, the sampled histogram of hand-off waits (absent: not printed). */
  handOffWaits?: HandOffHistogram[];
  deviceThread: { served: number; parks: number };
  processStartNs: number;
  /** When the VM had ended (run() resolved). */
  endedNs: number;
  /** When the report is made. */
  nowNs: number;
}

const ms = (ns: number): number => Math.round(ns / 1e3) / 1e3;

/** The boot vCPU's first KVM_RUN (the guest's first instruction), or undefined when it never ran. */
function firstRunNs(record: RunRecord): number | undefined {
  const first = record.vcpus[0]?.firstRunNs ?? 0;
  return first > 0 ? first : undefined;
}

/** The lines of plain --stats: as before, plus each vCPU's hand-off wait histogram when the record has one. */
export function statsText(record: RunRecord): string {
  const lines = record.vcpus.flatMap((stats, id) => [
    `vcpu${id}: ${Object.entries(stats).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    ...(record.handOffWaits?.[id] ? [`vcpu${id} ${handOffHistogramText(record.handOffWaits[id])}`] : []),
  ]);
  lines.push(`device thread: served=${record.deviceThread.served} parks=${record.deviceThread.parks}`);
  const first = firstRunNs(record);
  if (first !== undefined) lines.push(`start-up: first guest instruction ${((first - record.processStartNs) / 1e6).toFixed(1)} ms after process start`);
  return `${lines.join('\n')}\n`;
}

/** One JSON object on one line: how the VM ended, the counters, and durations in ms. */
export function statsJson(record: RunRecord): string {
  const first = firstRunNs(record);
  const durationsMs = {
    /** Process start to the guest's first instruction: Node, tsvmm's modules, building the VM. */
    startup: first === undefined ? null : ms(first - record.processStartNs),
    /** The guest's first instruction to the VM's end. */
    guest: first === undefined ? null : ms(record.endedNs - first),
    /** Process start to this report. */
    total: ms(record.nowNs - record.processStartNs),
  };
  // firstRunNs is a clock reading: durationsMs says what it means.
  const vcpus = record.vcpus.map((stats, id) => ({
    id, ...Object.fromEntries(Object.entries(stats).filter(([name]) => name !== 'firstRunNs')),
    ...(record.handOffWaits?.[id] ? { handOffWaits: handOffHistogramJson(record.handOffWaits[id]) } : {}),
  }));
  return `${JSON.stringify({
    exit: record.exit,
    exitCode: record.exitCode,
    summary: record.summary,
    durationsMs,
    vcpus,
    deviceThread: record.deviceThread,
  })}\n`;
}
