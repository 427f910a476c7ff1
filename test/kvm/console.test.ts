// COM1 as a console: host input reaches the guest through the UART's receive
// interrupt, signals stop the VM cleanly, and Ctrl-A x on a terminal quits
// and gives the terminal back as it was.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAIN, explain, guest, runTsvmm } from '../support/tsvmm';

for (const irqchip of [[], ['--split-irqchip']]) {
  test(`stdin reaches the guest${irqchip.length ? ' (split irqchip: userspace PIC)' : ''}: lines come back upper-cased, "quit" resets with exit 0`, async () => {
    const result = await runTsvmm(['--kernel', guest('echo'), ...irqchip], {
      respond: [['echo: ready\n', 'hello world\nquit\n']],
    });
    assert.is(result.code, 0, explain(result));
    assert.is(result.stdout, 'echo: ready\necho: HELLO WORLD\necho: bye\n', explain(result));
  });
}

for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  test(`${signal} stops an idle guest on every vCPU and exits ${code}`, async () => {
    const started = Date.now();
    const result = await runTsvmm(['--kernel', guest('echo'), '--cpus', '4'], {
      stopWhen: (stdout) => stdout.includes('echo: ready\n'),
      stopSignal: signal,
    });
    assert.is(result.code, code, explain(result));
    assert.is(result.stderr, `tsvmm: stopped by ${signal}\n`, explain(result));
    assert.ok(Date.now() - started < 15_000, 'stopped promptly');
  });
}

test('on a terminal Ctrl-A h lists the escape keys, Ctrl-A x quits with one line and exit 0, and the terminal mode is restored', () => {
  if (spawnSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' }).status !== 0) {
    console.log('not checked: util-linux script(1) is not installed');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-tty-'));
  const before = path.join(dir, 'before');
  const after = path.join(dir, 'after');
  // script(1) gives tsvmm a pseudo-terminal; the escape arrives once the
  // guest is up (the sleep), as a person would type it.
  const inner = `stty -g > ${before}; ${process.execPath} ${MAIN} --kernel ${guest('echo')}; echo "exit=$?"; stty -g > ${after}`;
  const result = spawnSync('sh', ['-c', `(sleep 3; printf 'a\\001hb\\r'; sleep 1; printf '\\001x') | script -qec '${inner}' /dev/null`], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const output = result.stdout.replace(/\r/g, '');
  assert.match(output, /echo: ready\n/, output);
  assert.match(output, /exit=0\n/, output);
  assert.match(output, /tsvmm escape keys \(on a terminal\):\n {2}Ctrl-A x {8}quit tsvmm/, output);
  assert.match(output, /\ntsvmm: Ctrl-A x: quitting\n/, output);
  assert.match(output, /\necho: AB\n/, 'the keys around Ctrl-A h reach the guest, the h does not');
  assert.is(fs.readFileSync(after, 'utf8'), fs.readFileSync(before, 'utf8'), 'terminal settings restored');
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
