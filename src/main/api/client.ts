// A client for the control API (what `tsvmm remote` and the tests use): one
// request on the unix socket, the JSON answer back. A socket nobody listens
// on is a usage error that says how to get one.

import * as http from 'node:http';
import { TsvmmError } from '../../shared/errors';
import { API_PREFIX } from './routes';

export interface ApiReply {
  status: number;
  /** The answer's JSON; an error status carries {"error": "..."}. */
  body: unknown;
}

/** Why nothing answered at `socketPath`, as the one line a user reads. */
function connectProblem(socketPath: string, code: string): string {
  switch (code) {
    case 'ENOENT': return `no API socket at ${socketPath}; start tsvmm with --api-socket ${socketPath} first`;
    case 'ECONNREFUSED': return `nothing listens on ${socketPath} (the tsvmm that made it has ended); start one with --api-socket ${socketPath}`;
    case 'ENOTSOCK': return `${socketPath} is not a socket; give the path passed to tsvmm --api-socket`;
    case 'EACCES': return `no permission to connect to ${socketPath} (it is its owner's alone); run as the user that started tsvmm`;
    default: return `cannot connect to ${socketPath} (${code})`;
  }
}

/** Sends `method` to /api/v1/`route` with `body` as JSON; resolves with whatever status the server answers. */
export function apiRequest(socketPath: string, method: 'GET' | 'PUT', route: string, body?: unknown): Promise<ApiReply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request({
      socketPath,
      method,
      path: `${API_PREFIX}${route}`,
      headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: response.statusCode ?? 0, body: text.trim() === '' ? null : JSON.parse(text) });
        } catch {
          reject(new TsvmmError('host', `the server on ${socketPath} answered ${response.statusCode} with something that is not JSON: ${text.slice(0, 200)}`));
        }
      });
      response.on('error', (error) => reject(new TsvmmError('host', `the answer from ${socketPath} broke off: ${error.message}`, { cause: error })));
    });
    request.on('error', (error) => {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      const connecting = ['ENOENT', 'ECONNREFUSED', 'ENOTSOCK', 'EACCES'].includes(code);
      reject(new TsvmmError(connecting ? 'usage' : 'host', connecting ? connectProblem(socketPath, code) : `request to ${socketPath} failed: ${error.message}`, { cause: error }));
    });
    request.end(payload);
  });
}
