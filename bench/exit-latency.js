'use strict';
// Exit latency: bench/out/exit-bench.elf under the C reference, QEMU and
// tsvmm (in this process, once per hand-off mode `tsvmm --help` lists),
// `--rounds` interleaved rounds, each round once on a quiet host and once
// under one competing busy process (`yes > /dev/null`, the same one for every
// runner of that round).
//
// Two figures per exit kind, both in guest TSC cycles:
// - back to back: the guest times N accesses of one kind between two rdtsc
//   reads; total / N is what a guest doing I/O feels. Per runner the median
//   over rounds with min and max, and its ratio to the C reference (the ratio
//   of the medians, with the range of the per-round ratios).
// - per exit: the median of 2000 single exits, each in an lfence/rdtsc
//   bracket, net of the empty bracket's median ("timer-only", same guest
//   run): on this PVM host the bracket alone costs about an exit and varies
//   by thousands of cycles between runs, so these separate VMMs poorly.
//
// Writes bench/out/exit-latency.json and bench/out/exit-latency.svg; with
// --write-results also bench/exit-latency.svg and the "## Exit latency"
// section of bench/RESULTS.md.

const fs = require('node:fs');
const path = require('node:path');
const lib = require('./lib');

const TIMER_ONLY = 'timer-only';
const KINDS = [
  'port-write-unclaimed', 'port-read-unclaimed', 'port-write-device', 'port-read-device',
  'port-outsb16-device', 'mmio-read-unclaimed', 'mmio-write-unclaimed', 'mmio-read-device', 'mmio-write-device',
];
/** The kinds issue 11's goals are about: forwarded to tsvmm's device thread. */
const GOAL_KINDS = ['port-read-device', 'mmio-read-device'];
const REFERENCE = 'c-ref';
const HEADING = '## Exit latency';
/** Above this max/min over rounds the C reference itself is too noisy for its ratios to mean much. */
const REFERENCE_SPREAD_LIMIT = 1.15;
/** Issue 11: forwarded reads back to back at most this many times the C reference on an idle host. */
const IDLE_RATIO_GOAL = 1.10;
const RUN_TIMEOUT_MS = 300000;

const DESCRIPTION = `Exit latency: the bench guest under the C reference (bench/ref-vmm.c), QEMU and tsvmm
(each hand-off mode), interleaved rounds, idle and under one competing busy process. Reports per
exit kind the average of back-to-back exits (min/median/max over rounds) and the median single
exit, as ratios to the C reference measured in the same run.`;

const ACCEPTS = ['rounds', 'quick', 'qemu', 'load', 'handOff', 'writeResults'];

function conditions(options) {
  return options.load === false ? ['idle'] : ['idle', 'loaded'];
}

function runnerList(options) {
  const runners = [{ name: REFERENCE, label: 'C reference' }];
  if (options.qemu !== false && lib.qemuVersion()) runners.push({ name: 'qemu', label: 'QEMU' });
  for (const mode of options.handOffs ?? lib.handOffModes().modes) runners.push({ name: `tsvmm-${mode}`, label: `tsvmm ${mode}`, handOff: mode });
  return runners;
}

/** How many guest runs main() makes (for [k/N]). */
function plan(options) {
  return options.rounds * conditions(options).length * runnerList(options).length;
}

async function runOnce(runner, elf) {
  let r;
  if (runner.name === REFERENCE) r = await lib.runProcess(lib.REF_VMM, [elf], RUN_TIMEOUT_MS);
  else if (runner.name === 'qemu') r = await lib.runProcess(lib.QEMU, lib.qemuArgs(elf, 1), RUN_TIMEOUT_MS);
  else r = await lib.runTsvmm(elf, { handOff: runner.handOff, timeoutMs: RUN_TIMEOUT_MS });
  const parsed = lib.parseBench(r.out);
  if (!r.out.includes('bench: done') || !parsed.kinds[TIMER_ONLY]) {
    throw new Error(`${runner.name}: the guest did not finish (exit ${r.code ?? r.signal} ${r.reason ?? ''}): ${r.err ?? ''}\n${r.out.slice(-500)}`);
  }
  // Single exits net of the timing bracket, measured in this same run.
  const bracket = parsed.kinds[TIMER_ONLY].median;
  for (const kind of KINDS) {
    const k = parsed.kinds[kind];
    if (k) Object.assign(k, { gross: k.median, median: k.median - bracket });
  }
  return { ...parsed, bracket, stats: r.stats, device: r.device, waits: r.waits };
}

/** Per condition, runner and kind: spreads over rounds and ratios to the reference of the same rounds. */
function summarise(raw, runners, conds) {
  const results = {};
  for (const cond of conds) {
    results[cond] = {};
    const refRounds = raw[cond][REFERENCE];
    for (const runner of runners) {
      const rounds = raw[cond][runner.name];
      const cells = {};
      for (const kind of KINDS) {
        // A failed run is an undefined round: NaN here, left out of the spreads, unpaired in the ratios.
        const b2b = rounds.map((r) => r?.kinds[kind]?.b2b?.avg);
        const single = rounds.map((r) => r?.kinds[kind]?.median);
        const refB2b = refRounds.map((r) => r.kinds[kind]?.b2b?.avg);
        const refSingle = refRounds.map((r) => r.kinds[kind]?.median);
        const b = lib.spread(b2b);
        const s = lib.spread(single);
        cells[kind] = {
          b2b: b,
          single: s,
          // Round i of every runner ran between the same two reference runs' neighbours: pair them.
          b2bRatio: b.median / lib.median(refB2b),
          b2bRoundRatios: lib.spread(b2b.map((v, i) => v / refB2b[i])),
          singleRatio: s.median / lib.median(refSingle),
        };
      }
      results[cond][runner.name] = { kinds: cells, bracket: lib.median(rounds.map((r) => r?.bracket)) };
    }
  }
  return results;
}

const int = (x) => (Number.isFinite(x) ? String(Math.round(x)) : '-');
const range = (s) => `${int(s.min)}-${int(s.max)}`;
const ratioRange = (s) => (Number.isFinite(s.min) ? `${s.min.toFixed(2)}-${s.max.toFixed(2)}` : '-');

function tables(results, runners, cond, rounds) {
  const r = results[cond];
  const b2bRows = [[`back to back, cycles per exit (${cond})`, ...runners.map((x) => x.label)]];
  const ratioRows = [[`back to back, x C reference (${cond})`, ...runners.filter((x) => x.name !== REFERENCE).map((x) => x.label)]];
  const singleRows = [[`single exit net of bracket, cycles (${cond})`, ...runners.map((x) => x.label)]];
  for (const kind of KINDS) {
    b2bRows.push([kind, ...runners.map((x) => {
      const c = r[x.name].kinds[kind].b2b;
      return rounds > 1 ? `${int(c.median)} (${range(c)})` : int(c.median);
    })]);
    ratioRows.push([kind, ...runners.filter((x) => x.name !== REFERENCE).map((x) => {
      const c = r[x.name].kinds[kind];
      return rounds > 1 ? `${lib.ratioText(c.b2bRatio)} (${ratioRange(c.b2bRoundRatios)})` : lib.ratioText(c.b2bRatio);
    })]);
    singleRows.push([kind, ...runners.map((x) => {
      const c = r[x.name].kinds[kind];
      return x.name === REFERENCE ? int(c.single.median) : `${int(c.single.median)} (${lib.ratioText(c.singleRatio)})`;
    })]);
  }
  singleRows.push([`${TIMER_ONLY} (taken off above)`, ...runners.map((x) => int(r[x.name].bracket))]);
  return { b2bRows, ratioRows, singleRows };
}

/** One warning per condition naming the kinds whose reference varies too much over rounds to trust its ratios. */
function referenceWarnings(results, cond) {
  const wide = [];
  for (const kind of KINDS) {
    const s = results[cond][REFERENCE].kinds[kind].b2b;
    if (s.values.length > 1 && s.max / s.min > REFERENCE_SPREAD_LIMIT) wide.push(`${kind} ${(s.max / s.min).toFixed(2)}x`);
  }
  if (wide.length === 0) return [];
  return [`WARNING (${cond === 'idle' ? 'idle' : 'one busy process'}): the C reference's own back-to-back figures vary more than ${REFERENCE_SPREAD_LIMIT}x (max/min over rounds) for ${wide.join(', ')}: the ratios of those kinds are not to be trusted; rerun on a quieter host or with more --rounds`];
}

function goals(results, runners, conds, defaultMode) {
  const tsvmm = runners.filter((r) => r.handOff);
  const main = `tsvmm-${defaultMode}`;
  const out = [];
  const refSpread = (cond, kind) => {
    const s = results[cond][REFERENCE].kinds[kind].b2b;
    if (s.values.length < 2) return '';
    const wide = s.max / s.min;
    return `; C ref spread ${wide.toFixed(2)}x${wide > REFERENCE_SPREAD_LIMIT ? ', too wide to trust' : ''}`;
  };
  const others = (cond, kind) => tsvmm.filter((r) => r.name !== main)
    .map((r) => `${r.handOff} ${lib.ratioText(results[cond][r.name].kinds[kind].b2bRatio)}`).join(', ');
  for (const kind of GOAL_KINDS) {
    const c = results.idle[main]?.kinds[kind];
    const other = others('idle', kind);
    out.push(lib.goal(`${kind} back to back, idle: tsvmm (${defaultMode}) <= ${IDLE_RATIO_GOAL.toFixed(2)}x C ref`, c?.b2bRatio, IDLE_RATIO_GOAL, {
      spreadText: c && c.b2b.values.length > 1 ? `per round ${ratioRange(c.b2bRoundRatios)}${refSpread('idle', kind)}` : '',
      detail: other ? `other modes: ${other}` : '',
    }));
  }
  if (conds.includes('loaded')) {
    for (const kind of GOAL_KINDS) {
      const c = results.loaded[main]?.kinds[kind];
      const q = results.loaded.qemu?.kinds[kind];
      const target = `${kind} back to back, one busy process: tsvmm (${defaultMode})'s ratio to the C ref <= QEMU's`;
      if (!q) {
        out.push({ target, met: undefined, shown: 'QEMU not run' });
        continue;
      }
      const rel = c.b2bRatio / q.b2bRatio;
      const g = lib.goal(target, rel, 1, {
        spreadText: `tsvmm ${lib.ratioText(c.b2bRatio)} vs QEMU ${lib.ratioText(q.b2bRatio)}${c.b2b.values.length > 1 ? `; per round tsvmm ${ratioRange(c.b2bRoundRatios)}, QEMU ${ratioRange(q.b2bRoundRatios)}${refSpread('loaded', kind)}` : ''}`,
        detail: others('loaded', kind) ? `other modes: ${others('loaded', kind)}` : '',
      });
      g.shown = g.shown.replace(/^[\d.]+x/, `${rel.toFixed(2)}x QEMU's ratio`);
      out.push(g);
    }
  }
  return out;
}

/**
 * Grouped horizontal bars: one group per exit kind, one bar per runner: the
 * back-to-back average in microseconds per exit on the idle host, with a
 * whisker from the round minimum to the maximum.
 */
function svgChart(results, runners, tscHz, rounds) {
  const colors = ['#444444', '#8c6bb1', '#2b8cbe', '#7bccc4', '#f03b20', '#feb24c', '#31a354', '#fa9fb5'];
  const barH = 9;
  const groupGap = 14;
  const left = 190;
  const plotW = 520;
  const legendW = 200;
  const top = 58;
  const groupH = runners.length * barH + groupGap;
  const height = top + KINDS.length * groupH + 50;
  const title = 'Exit round trip as the guest sees it: average of back-to-back exits, idle host';
  const subtitle = `microseconds per exit, median of ${rounds} round${rounds > 1 ? 's' : ''} (whiskers: min-max); lower is better`;
  // ~7 px per character of the 13 px bold title: the picture is made wide enough for it.
  const width = Math.max(left + plotW + legendW, 20 + title.length * 7.2);
  const us = (cycles) => (cycles / tscHz) * 1e6;
  const cell = (runner, kind) => results.idle[runner.name].kinds[kind].b2b;
  let max = 0;
  for (const runner of runners) for (const kind of KINDS) max = Math.max(max, us(cell(runner, kind).max) || 0);
  const step = max > 200 ? 50 : max > 80 ? 20 : max > 40 ? 10 : max > 10 ? 5 : 1;
  const axisMax = Math.max(step, Math.ceil(max / step) * step);
  const x = (v) => left + (v / axisMax) * plotW;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${Math.ceil(width)}" height="${height}" font-family="sans-serif" font-size="11">`);
  parts.push('<rect width="100%" height="100%" fill="white"/>');
  parts.push(`<text x="10" y="20" font-size="13" font-weight="bold">${title}</text>`);
  parts.push(`<text x="10" y="37">${subtitle}</text>`);
  for (let v = 0; v <= axisMax; v += step) {
    parts.push(`<line x1="${x(v)}" y1="${top - 6}" x2="${x(v)}" y2="${height - 40}" stroke="#dddddd"/>`);
    parts.push(`<text x="${x(v)}" y="${height - 26}" text-anchor="middle">${v}</text>`);
  }
  parts.push(`<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">us per exit (guest TSC ${(tscHz / 1e6).toFixed(0)} MHz)</text>`);
  KINDS.forEach((kind, k) => {
    const y0 = top + k * groupH;
    parts.push(`<text x="${left - 6}" y="${y0 + (runners.length * barH) / 2 + 4}" text-anchor="end">${kind}</text>`);
    runners.forEach((runner, r) => {
      const c = cell(runner, kind);
      const v = us(c.median);
      if (!Number.isFinite(v)) return;
      const y = y0 + r * barH;
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(v) - left).toFixed(1)}" height="${barH - 1}" fill="${colors[r % colors.length]}"/>`);
      if (c.values.length > 1) {
        parts.push(`<line x1="${x(us(c.min)).toFixed(1)}" y1="${y + (barH - 1) / 2}" x2="${x(us(c.max)).toFixed(1)}" y2="${y + (barH - 1) / 2}" stroke="black" stroke-width="0.8"/>`);
      }
      parts.push(`<text x="${(x(Math.max(v, us(c.max) || 0)) + 3).toFixed(1)}" y="${y + barH - 1}" font-size="8">${v.toFixed(1)}</text>`);
    });
  });
  runners.forEach((runner, r) => {
    const y = top + r * 16;
    parts.push(`<rect x="${left + plotW + 40}" y="${y}" width="12" height="10" fill="${colors[r % colors.length]}"/>`);
    parts.push(`<text x="${left + plotW + 56}" y="${y + 9}">${runner.label}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function hostCounterLines(raw, runners, conds) {
  const lines = [];
  for (const cond of conds) {
    for (const runner of runners.filter((r) => r.handOff)) {
      const last = raw[cond][runner.name].filter(Boolean).at(-1);
      if (!last?.stats) continue;
      const v = last.stats[0];
      const waits = lib.handOffWaitText(last.waits);
      lines.push(`${runner.label} (${cond}, last round): vcpu0 kvmRuns=${v.kvmRuns} forwarded=${v.forwarded} unclaimed=${v.unclaimed} spinHits=${v.spinHits} parks=${v.parks}; device thread served=${last.device.served} parks=${last.device.parks}${waits ? `; ${waits}` : ''}`);
    }
  }
  return lines;
}

async function main(options, progress = new lib.Progress(plan(options))) {
  lib.ensureBuilt();
  const { rounds } = options;
  const runners = runnerList(options);
  const conds = conditions(options);
  const elf = options.quick ? lib.GUEST.exitQuick : lib.GUEST.exit;
  const defaultMode = lib.judgedHandOff(options);
  const raw = Object.fromEntries(conds.map((c) => [c, Object.fromEntries(runners.map((r) => [r.name, []]))]));
  const loadShares = [];
  const tscSamples = [];
  const loadBefore = lib.machineInfo().loadAverage;
  const failures = [];
  for (let round = 1; round <= rounds; round++) {
    for (const cond of conds) {
      // Alternate the order so that no runner always follows the same one.
      const order = round % 2 ? runners : [...runners].reverse();
      const load = cond === 'loaded' ? await lib.startLoad() : undefined;
      try {
        for (const runner of order) {
          progress.step(`exit-latency: round ${round}/${rounds}, ${cond === 'loaded' ? 'one busy process' : 'idle'}: ${runner.label}`);
          let result;
          try {
            result = await runOnce(runner, elf);
          } catch (error) {
            // Without the reference nothing has a ratio; any other runner's failure costs only its round.
            if (runner.name === REFERENCE) throw error;
            failures.push(`${runner.label}, round ${round} (${cond === 'loaded' ? 'one busy process' : 'idle'}): ${error.message.split('\n')[0]}`);
            lib.log(`exit-latency: ${failures.at(-1)}; going on without it`);
          }
          raw[cond][runner.name].push(result);
          if (result?.tscHz) tscSamples.push(result.tscHz.hz);
        }
      } finally {
        if (load) loadShares.push(load.stop());
      }
    }
  }
  const info = lib.machineInfo();
  const tscHz = lib.median(tscSamples) || info.cpuMHz * 1e6;
  const results = summarise(raw, runners, conds);
  const warnings = [...failures.map((f) => `FAILED: ${f}`), ...conds.flatMap((c) => referenceWarnings(results, c))];
  const goalList = goals(results, runners, conds, defaultMode);
  const n = raw.idle[REFERENCE][0].kinds[KINDS[0]].b2b?.n;
  const loadText = loadShares.length ? `the competing process got ${lib.spread(loadShares).min.toFixed(0)}-${lib.spread(loadShares).max.toFixed(0)}% of a core during the loaded runs` : '';

  const textParts = [];
  const mdParts = [];
  for (const cond of conds) {
    const t = tables(results, runners, cond, rounds);
    const caption = cond === 'idle' ? 'Idle host' : `One competing busy process (\`yes > /dev/null\`, started before and killed after each round's loaded runs; ${loadText})`;
    textParts.push(`${cond === 'idle' ? 'IDLE' : 'ONE BUSY PROCESS'}`, lib.formatTable(t.b2bRows), '', lib.formatTable(t.ratioRows), '', lib.formatTable(t.singleRows), '');
    mdParts.push(`### ${caption}`, '', lib.markdownTable(t.b2bRows), '', lib.markdownTable(t.ratioRows), '', lib.markdownTable(t.singleRows), '');
  }
  const counters = hostCounterLines(raw, runners, conds);
  const intro = `${rounds} interleaved round${rounds > 1 ? 's' : ''}; back to back = ${n} accesses of one kind between two rdtsc reads, cycles / ${n}, median (min-max) over rounds; `
    + `ratios = median over the C reference's median (per-round ratios in parentheses); single exit = median of ${raw.idle[REFERENCE][0].kinds[KINDS[0]].n} bracketed exits net of the empty bracket; guest TSC ${(tscHz / 1e6).toFixed(1)} MHz`;

  const section = `${HEADING}

The bench guest (bench/out/${path.basename(elf)}) under the C reference (bench/ref-vmm.c: every exit answered inline on the vCPU
thread), QEMU and tsvmm with each hand-off mode. ${intro}. "device" = served on tsvmm's device thread (COM1 scratch
register 0x3ff, the register file at 0xd0000000); "unclaimed" = port 0x300 / MMIO 0xd0100000, answered on the vCPU
thread; outsb16 = \`rep outsb\` of 16 bytes (16 exits; per byte back to back). Load average before / after:
${loadBefore.join(' ')} / ${info.loadAverage.join(' ')}.

${warnings.length ? `${warnings.map((w) => `- **${w}**`).join('\n')}\n\n` : ''}${mdParts.join('\n')}
![exit latency](exit-latency.svg)

${lib.goalLines(goalList)}

${counters.map((l) => `- ${l}`).join('\n')}
`;
  const summary = {
    date: new Date().toISOString(), machine: info, qemu: lib.qemuVersion() || 'not installed', tscHz, rounds, quick: options.quick,
    conditions: conds, runners: runners.map((r) => r.name), defaultMode, loadShares, results, goals: goalList, warnings,
    rawRounds: Object.fromEntries(conds.map((c) => [c, Object.fromEntries(runners.map((r) => [r.name, raw[c][r.name].map((x) => (x ? { bracket: x.bracket, kinds: x.kinds } : null))]))])),
  };
  fs.writeFileSync(path.join(lib.OUT, 'exit-latency.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const svg = svgChart(results, runners, tscHz, rounds);
  fs.writeFileSync(path.join(lib.OUT, 'exit-latency.svg'), svg);
  if (options.writeResults) fs.writeFileSync(path.join(__dirname, 'exit-latency.svg'), svg);

  const lines = [`Exit latency: ${intro}`];
  if (!lib.qemuVersion()) lines.push('QEMU: not installed');
  if (loadText) lines.push(`Loaded runs: ${loadText}`);
  lines.push('', ...textParts, ...warnings, ...lib.goalText(goalList), ...counters);
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  return { summary, section, goals: goalList, warnings, text, svg };
}

module.exports = { main, plan, KINDS, ACCEPTS, HEADING };

lib.runIfMain(module, {
  script: 'exit-latency.js',
  description: DESCRIPTION,
  accepts: ACCEPTS,
  plan,
  main,
  resultsHeading: HEADING,
  alsoWrote: 'bench/exit-latency.svg',
});
