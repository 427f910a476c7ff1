// `tsvmm remote --api-socket PATH COMMAND`: the control API's client for
// people without curl. It prints the answer's JSON and exits 0; a refused
// request prints the server's error line and exits 1; no server at PATH, or
// bad arguments, is one line and exit 2.

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { asTsvmmError } from '../../shared/errors';
import { UsageError } from './args';
import { EXIT_CODE, exitCodeForError } from './exit-codes';

const REMOTE_USAGE = `usage: tsvmm remote --api-socket PATH COMMAND

Sends one request to a running tsvmm's control API (started with --api-socket PATH)
and prints the JSON answer. COMMAND is one of:

  info            the VM's config, state, vCPUs and devices    (GET /api/v1/vm.info)
  counters        per-vCPU and per-device counters             (GET /api/v1/vm.counters)
  pause           stop every vCPU on an instruction boundary   (PUT /api/v1/vm.pause)
  resume          let a paused VM run again                    (PUT /api/v1/vm.resume)
  snapshot DIR    save a paused VM into the directory DIR      (PUT /api/v1/vm.snapshot)
  shutdown        end the VM; that tsvmm exits 0               (PUT /api/v1/vm.shutdown)

Exit status: 0 answered, 1 the request was refused (the error is printed),
2 bad arguments or no tsvmm listening at PATH.`;

interface RemoteRequest {
  socket: string;
  method: 'GET' | 'PUT';
  route: string;
  body?: unknown;
}

const COMMANDS: Record<string, { method: 'GET' | 'PUT'; route: string }> = {
  info: { method: 'GET', route: 'vm.info' },
  counters: { method: 'GET', route: 'vm.counters' },
  pause: { method: 'PUT', route: 'vm.pause' },
  resume: { method: 'PUT', route: 'vm.resume' },
  snapshot: { method: 'PUT', route: 'vm.snapshot' },
  shutdown: { method: 'PUT', route: 'vm.shutdown' },
};

/** The request `tsvmm remote ARGS` asks for; undefined for --help. */
export function parseRemote(argv: string[]): RemoteRequest | undefined {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { 'api-socket': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (error) {
    throw new UsageError(`remote: ${(error as Error).message.split('\n')[0].replace(/\.$/, '')}; see tsvmm remote --help`);
  }
  if (parsed.values.help) return undefined;
  const socket = parsed.values['api-socket'];
  if (socket === undefined || socket === '') throw new UsageError('remote needs --api-socket PATH, the path given to the running tsvmm');
  const [command, ...rest] = parsed.positionals;
  const names = Object.keys(COMMANDS).join(', ');
  if (command === undefined) throw new UsageError(`remote needs a command: ${names}`);
  const known = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!known) throw new UsageError(`remote: unknown command "${command}"; use one of ${names}`);
  if (command === 'snapshot') {
    if (rest.length !== 1 || rest[0] === '') throw new UsageError('remote snapshot takes one directory: tsvmm remote --api-socket PATH snapshot DIR');
    return { socket, ...known, body: { destination_url: pathToFileURL(path.resolve(rest[0])).href } };
  }
  if (rest.length > 0) throw new UsageError(`remote ${command} takes no arguments, got "${rest.join(' ')}"`);
  return { socket, ...known };
}

/** Runs `tsvmm remote ...`; resolves with the exit code. */
export async function remote(argv: string[]): Promise<number> {
  try {
    const request = parseRemote(argv);
    if (!request) {
      process.stdout.write(`${REMOTE_USAGE}\n`);
      return 0;
    }
    // node:http is loaded here, not with the CLI: a VM's start-up does without it.
    const { apiRequest } = require('../api/client') as typeof import('../api/client');
    const reply = await apiRequest(request.socket, request.method, request.route, request.body);
    if (reply.status >= 200 && reply.status < 300) {
      process.stdout.write(`${JSON.stringify(reply.body, null, 2)}\n`);
      return 0;
    }
    const error = (reply.body as { error?: unknown } | null)?.error;
    process.stderr.write(`tsvmm: ${typeof error === 'string' ? error : JSON.stringify(reply.body)} (HTTP ${reply.status})\n`);
    return EXIT_CODE.requestRefused;
  } catch (error) {
    const failure = asTsvmmError(error);
    process.stderr.write(`tsvmm: ${failure.message}\n`);
    return exitCodeForError(failure.kind);
  }
}
